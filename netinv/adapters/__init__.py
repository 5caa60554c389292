"""Adapters that let a :class:`netinv.detector.Detector` stand in where other OOD libraries
expect their own detectors. Each is an optional extra and imports its library only when used:

- :mod:`netinv.adapters.pytorch_ood`: ``NetinvDetector``, pytorch-ood's ``Detector``
  interface (``pip install 'netinv-study[pytorch-ood]'``); scores, higher = more OOD.
- :mod:`netinv.adapters.openood`: ``NetinvPostprocessor``, OpenOOD's postprocessor interface
  (``setup``, ``postprocess``, ``inference``); confidences, higher = more ID. Needs no OpenOOD
  import (its evaluator calls these methods by name).
"""

from __future__ import annotations

import os

from netinv.detector import Detector, Normalization


def resolve_detector(detector: Detector | str | os.PathLike, score: str | None,
                     input_normalization: Normalization | None) -> tuple[Detector, str]:
    """The adapters' shared argument handling: (the Detector, the score name it reports).

    Args:
        detector: A Detector, a detector file or a preset name (loaded with
            ``input_normalization``).
        score: One of :data:`netinv.scores.SCORES`, or ``"knn"``, ``"layer_stats"`` or
            ``"fused"`` for a fitted detector (:meth:`~netinv.detector.Detector.fit`); None =
            the detector's own.

    Raises:
        TypeError: ``detector`` is none of the three.
        ValueError: A score the detector cannot compute, or a file that is not a valid
            detector.
    """
    if isinstance(detector, (str, os.PathLike)):
        detector = Detector.load(detector, input_normalization=input_normalization)
    if not isinstance(detector, Detector):
        raise TypeError(f"`detector` must be a netinv Detector, a file or a preset name, "
                        f"got type={type(detector).__name__}.")
    return detector, detector.score_name if score is None else detector.check_score(score)
