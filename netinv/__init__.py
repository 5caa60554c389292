"""netinv: an (n+1)-class classifier whose garbage class is filled, round after round, with
images a conditional generator produces by network inversion of the current classifier.

    from netinv import Config, run_rounds, Detector
    result = run_rounds(Config.from_flat({"data/id": "mnist", "rounds/count": 2}))
    detector = Detector.load("runs/.../detector.pt"); detector(images)  # OOD scores
    detector = Detector.load("mnist")  # a shipped preset, from the installed package

Modules: config (one typed config), datasets (find, download, decode, cache; folder:PATH trees
and in-memory sets), data (shapes, splits, prepare), presets (named configs and their shipped
detectors), adapters (pytorch-ood and OpenOOD interfaces), models (classifier, generator, built
from config and rebuilt from their spec), inversion (losses, generator training), pipeline (the
round loop), state (RoundState: what a round leaves, resume checks), records (the per-round
record's fields), inference (device, normalisation, chunked logits), scores, metrics, detector
(deployable scorer), plots, cli, run_folder, cli_errors. netinv imports neither ray nor optuna.
"""

from __future__ import annotations

from netinv.config import Config

__version__ = "0.1.0"

__all__ = ["Config", "Detector", "RoundState", "run_rounds", "__version__"]


def __getattr__(name: str):
    # heavy modules load on first use, so `import netinv` stays cheap for search spaces and CLIs
    if name == "run_rounds":
        from netinv.pipeline import run_rounds

        return run_rounds
    if name == "RoundState":
        from netinv.state import RoundState

        return RoundState
    if name == "Detector":
        from netinv.detector import Detector

        return Detector
    raise AttributeError(f"module 'netinv' has no attribute {name!r}")
