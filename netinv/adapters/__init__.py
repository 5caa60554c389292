"""Adapters that let a :class:`netinv.detector.Detector` stand in where other OOD libraries
expect their own detectors. Each is an optional extra and imports its library only when used:

- :mod:`netinv.adapters.pytorch_ood`: ``NetinvDetector``, pytorch-ood's ``Detector``
  interface (``pip install 'netinv-study[pytorch-ood]'``); scores, higher = more OOD.
- :mod:`netinv.adapters.openood`: ``NetinvPostprocessor``, OpenOOD's postprocessor interface
  (``setup``, ``postprocess``, ``inference``); confidences, higher = more ID. Needs no OpenOOD
  import (its evaluator calls these methods by name).
"""
