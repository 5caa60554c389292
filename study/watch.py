"""Watching a running study: the live display, Ray's table behind ``--ray-table``, MLflow.

    python -m study.launch --space quick --name q1               # the compact live display
    python -m study.launch --space quick --name q1 --ray-table   # Ray Tune's full table instead
    python -m study.launch --space quick --name q1 --mlflow      # also log to <study>/mlflow.db
    mlflow ui --backend-store-uri sqlite:///studies/q1/mlflow.db # browse it (full mlflow package)

The live display (:class:`StudyReporter`, a Ray Tune ``ProgressReporter``) prints, at most every
:data:`REPORT_EVERY_S` seconds and whenever a trial starts, reports a round or ends: one header
line (trials by status, elapsed time, an estimate of the time left) and the study's best so far,
then one line per trial (status, round, the round's val objective, the trial's best), cut to the
terminal's width. Ray's per-trial result and checkpoint lines belong to its newer output engine
(``RAY_AIR_NEW_OUTPUT=1``); the launcher keeps the classic one, so with ``verbose=1`` only the
reporter prints.

MLflow: ``--mlflow`` logs every trial as an MLflow run through Ray Tune's
``MLflowLoggerCallback`` (as :class:`study.mlflow_tracking.StudyMLflowCallback`, which writes
each report in one batch; params: the trial's config; metrics: everything a round reports,
including each OOD set's metrics under the stable names of
:func:`netinv.records.flat_ood_metrics`). Without a URI it writes a SQLite file in the study
folder, ``<study>/mlflow.db`` (artifacts under ``<study>/mlruns``): MLflow 3 refuses its old
``./mlruns`` file store unless ``MLFLOW_ALLOW_FILE_STORE=true``, and SQLite needs no server.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ray.tune import ProgressReporter

from study import storage

REPORT_EVERY_S = 15.0  # longest time between two displays while nothing changes, seconds
MIN_GAP_S = 2.0  # shortest time between two displays when trials change, seconds
MAX_ROWS = 12  # trial lines shown; running trials first, then the best of the others
DEFAULT_WIDTH = 100  # columns when the terminal's width is unknown (a pipe, a log file)
STATUS = {"PENDING": "pending", "RUNNING": "running", "PAUSED": "paused",
          "TERMINATED": "done", "ERROR": "failed"}
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlruns"


@dataclass(frozen=True)
class TrialView:
    """What the display shows of one trial (from Tune's ``Trial`` and its last report)."""

    trial_id: str
    status: str  # one of STATUS's values
    round: int | None  # last reported round; None before round 0 is reported
    rounds_total: int | None
    objective: float | None  # the last round's val objective
    best: float | None  # the trial's best val objective so far


def view(trial: Any) -> TrialView:
    """A Tune ``Trial`` as the display sees it (its id, status and last reported metrics)."""
    last = trial.last_result or {}
    return TrialView(str(trial.trial_id), STATUS.get(trial.status, str(trial.status).lower()),
                     last.get("round"), last.get("rounds_total"), last.get("objective"),
                     last.get("best_objective"))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def _num(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.4f}"


def time_left(trials: list[TrialView], total: int | None, elapsed_s: float) -> float | None:
    """Seconds left at the rounds-per-second the study has shown so far; None before any round.

    Every trial is assumed to run all its rounds (an upper bound when ASHA stops some), and
    trials not started yet as many rounds as the started ones.
    """
    per_trial = next((t.rounds_total + 1 for t in trials if t.rounds_total is not None), None)
    done = sum(t.round + 1 for t in trials if t.round is not None)
    if per_trial is None or done == 0 or elapsed_s <= 0:
        return None
    left = sum(per_trial - (0 if t.round is None else t.round + 1)
               for t in trials if t.status in ("pending", "running", "paused"))
    left += max(0, (total or 0) - len(trials)) * per_trial
    return left * elapsed_s / done


def render(trials: list[TrialView], *, study: str, objective: str, mode: str,
           total: int | None, elapsed_s: float, width: int, asha: bool = False) -> str:
    """The display's text: header, best so far, one line per trial, each cut to ``width``.

    Args:
        trials: Every trial Tune knows, in its order.
        objective: The objective's name, e.g. ``"ue_tiered:auroc"``; ``mode`` "max" or "min".
        total: Trials the study will run (``--num-samples``); None = unknown.
        elapsed_s: Seconds since the launch.
        width: Terminal columns, >= 20.
    """
    if width < 20:
        raise ValueError(f"`width` must be >= 20 columns, got width={width}.")
    sign = 1.0 if mode == "max" else -1.0
    counts = {s: sum(t.status == s for t in trials) for s in dict.fromkeys(STATUS.values())}
    to_start = max(0, (total or 0) - len(trials))
    parts = [f"{n} {s}" for s, n in counts.items() if n] + ([f"{to_start} to start"]
                                                               if to_start else [])
    left = time_left(trials, total, elapsed_s)
    eta = "time left unknown" if left is None else f"{'≤ ' if asha else ''}~{_clock(left)} left"
    lines = [f"study {study}: {len(trials)}/{total or '?'} trials ({', '.join(parts) or 'none'})"
             f" · {_clock(elapsed_s)} elapsed · {eta}"]
    scored = [t for t in trials if t.best is not None and math.isfinite(t.best)]
    if scored:
        best = max(scored, key=lambda t: sign * t.best)
        lines.append(f"best val {objective} ({mode}): {_num(best.best)} (trial {best.trial_id})")
    else:
        lines.append(f"best val {objective} ({mode}): none yet")
    running = [t for t in trials if t.status == "running"]
    others = sorted((t for t in trials if t.status != "running"),
                    key=lambda t: -sign * t.best if t.best is not None else math.inf)
    shown = (running + others)[:MAX_ROWS]
    name_w = max([5, *(len(t.trial_id) for t in shown)])
    lines.append(f"{'trial':<{name_w}} {'status':<8} {'round':>7} {'objective':>9} {'best':>9}")
    for t in shown:
        rounds = "–" if t.round is None else f"{t.round}/{t.rounds_total}"
        lines.append(f"{t.trial_id:<{name_w}} {t.status:<8} {rounds:>7} {_num(t.objective):>9} "
                     f"{_num(t.best):>9}")
    if len(trials) > len(shown):
        lines.append(f"... and {len(trials) - len(shown)} more trials")
    return "\n".join(line if len(line) <= width else line[:width - 1] + "…" for line in lines)


class StudyReporter(ProgressReporter):
    """Ray Tune ``ProgressReporter`` printing :func:`render` (see the module docstring).

    Args:
        study: The study's name; ``objective`` its name, ``mode`` "max" or "min".
        asha: Whether ASHA may stop trials early (the time left is then an upper bound).
        out: Where to print; None = stdout at print time.
        width: Columns; None = the terminal's width at each display.
    """

    def __init__(self, *, study: str, objective: str, mode: str, asha: bool = False,
                 out: TextIO | None = None, width: int | None = None) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"`mode` must be 'max' or 'min', got mode={mode!r}.")
        self.study, self.objective, self.mode, self.asha = study, objective, mode, asha
        self.out, self.width = out, width
        self.start = time.time()
        self.total: int | None = None
        self._last_key: tuple = ()
        self._last_shown = -math.inf

    def setup(self, start_time: float | None = None, total_samples: int | None = None,
              metric: str | None = None, mode: str | None = None, **kwargs: Any) -> None:
        """Called by Tune before the run: its start time and the number of samples."""
        self.start = start_time or self.start
        self.total = total_samples if total_samples and total_samples > 0 else None

    def should_report(self, trials: list, done: bool = False) -> bool:
        """On ``done``; when a trial started, reported or ended (at most every
        :data:`MIN_GAP_S`); else every :data:`REPORT_EVERY_S`."""
        now = time.monotonic()
        key = tuple((t.trial_id, t.status, (t.last_result or {}).get("round")) for t in trials)
        gap = now - self._last_shown
        if done or gap >= REPORT_EVERY_S or (key != self._last_key and gap >= MIN_GAP_S):
            self._last_key, self._last_shown = key, now
            return True
        return False

    def report(self, trials: list, done: bool, *sys_info: str) -> None:
        """Print the display (Ray's system lines in ``sys_info`` are left out)."""
        width = self.width or shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
        text = render([view(t) for t in trials], study=self.study, objective=self.objective,
                      mode=self.mode, total=self.total, elapsed_s=time.time() - self.start,
                      width=max(20, width), asha=self.asha)
        print(("\n" if not done else "\n(final)\n") + text, file=self.out or sys.stdout,
              flush=True)


def mlflow_uri(study_dir: str, uri: str | None) -> str:
    """The MLflow tracking URI: ``uri``, or ``sqlite:///<study>/mlflow.db`` when None or "".

    Raises:
        ValueError: No URI and the study folder is not local (a SQLite file needs one).
    """
    if uri:
        return uri
    return f"sqlite:///{_local_dir(study_dir, 'a tracking URI') / MLFLOW_DB}"


def _local_dir(study_dir: str, what: str) -> Path:
    """The study folder as a local absolute path; ValueError when it is not on this machine."""
    fs, path = storage.filesystem(study_dir)
    if fs.type_name != "local":
        raise ValueError(f"--mlflow needs {what} when the study folder is not local (e.g. "
                         f"--mlflow http://host:5000), got study folder {study_dir!r}.")
    return Path(path).resolve()


def check_mlflow(study_dir: str, uri: str | None) -> str:
    """Before Ray starts: the tracking URI (:func:`mlflow_uri`), and mlflow importable.

    Raises:
        ValueError: No URI for a non-local study folder, or the mlflow package is missing
            (the message names the extra to install).
    """
    tracking = mlflow_uri(study_dir, uri)
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ValueError("--mlflow needs the mlflow package: pip install "
                         "'netinv-study[mlflow]'") from None
    return tracking


def mlflow_callback(study_dir: str, study: str, uri: str | None) -> Any:
    """Ray Tune's MLflow callback for the study (batched writes, :mod:`study.mlflow_tracking`):
    experiment = the study's name, one run per trial; a new local experiment keeps its
    artifacts in ``<study>/mlruns``.

    Raises:
        ValueError: As :func:`check_mlflow`.
    """
    tracking = check_mlflow(study_dir, uri)
    import mlflow

    from study.mlflow_tracking import StudyMLflowCallback

    client = mlflow.MlflowClient(tracking_uri=tracking)
    if client.get_experiment_by_name(study) is None:
        location = None
        if storage.is_local(study_dir):
            location = (_local_dir(study_dir, "") / MLFLOW_ARTIFACTS).as_uri()
        client.create_experiment(study, artifact_location=location)
    return StudyMLflowCallback(tracking_uri=tracking, experiment_name=study,
                               tags={"study": study}, save_artifact=False)

