"""The searcher: Optuna's sampler over the space, behind Ray Tune's ``OptunaSearch``.

The Optuna study lives in a journal file (``optuna.journal``, readable by optuna-dashboard), so
launching the same study name again continues it. Each launch (and each of two drivers launched
at once) gets its own sampler seed, :func:`sampler_seed`, so a continued study does not replay
the draws of the launch before it; every trial's ``rounds/seed`` stays the user's ``--seed``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

import optuna
from ray.tune.search.optuna import OptunaSearch

from study import layout, ray_compat, storage
from study.options import SAMPLERS, LaunchError

SEED_BITS = 32  # samplers take seeds in [0, 2**32 - 1]


def new_nonce() -> int:
    """A random number drawn once per driver process, in [0, 2**32 - 1]."""
    return secrets.randbits(SEED_BITS)


def sampler_seed(seed: int, launch_index: int, nonce: int) -> int:
    """The sampler seed of one launch, in [0, 2**32 - 1].

    Args:
        seed: The user's ``--seed`` (also every trial's ``rounds/seed``), >= 0.
        launch_index: Launches of this study recorded before this one (``study.json``), >= 0.
        nonce: This driver's :func:`new_nonce`; two drivers launched at once differ here.

    Returns:
        A hash of the three, so relaunches and concurrent drivers draw different
        configurations; ``study.json`` records it with its inputs.
    """
    digest = hashlib.sha256(f"{seed}/{launch_index}/{nonce}".encode()).digest()
    return int.from_bytes(digest[:SEED_BITS // 8], "big")


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler ``name`` (one of ``SAMPLERS``) seeded with ``seed``."""
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                "gp": optuna.samplers.GPSampler, "nsga2": optuna.samplers.NSGAIISampler}
    if name not in samplers:
        raise LaunchError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {name!r}.")
    return samplers[name](seed=seed)


def journal_path(study_dir: str, name: str) -> Path:
    """Where the driver keeps the Optuna journal.

    In the study folder when it is local, else in a local mirror (``$NETINV_JOURNALS``, default
    ``~/.cache/netinv/journals/<name>``) that :func:`upload_journal` copies next to the results
    (only the driver writes the journal).
    """
    fs, path = storage.filesystem(study_dir)
    if fs.type_name == "local":
        return Path(path) / layout.JOURNAL_FILE
    root = Path(os.environ.get("NETINV_JOURNALS", Path.home() / ".cache/netinv/journals"))
    local = root.expanduser() / name / layout.JOURNAL_FILE
    remote = storage.get_bytes(layout.journal_file(study_dir))
    if remote is not None and not local.exists():  # continuing a study from another machine
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(remote)
    return local


def upload_journal(study_dir: str, name: str) -> None:
    """Copy a local mirror of the journal into an object-store study folder."""
    fs, _ = storage.filesystem(study_dir)
    local = journal_path(study_dir, name)
    if fs.type_name != "local" and local.exists():
        storage.put_bytes(layout.journal_file(study_dir), local.read_bytes())


def make_storage(study_dir: str, name: str) -> optuna.storages.BaseStorage:
    """Optuna's journal file storage (readable by ``optuna-dashboard <path>``)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = journal_path(study_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


class StudySearch(OptunaSearch):
    """OptunaSearch with the study's bookkeeping.

    - The launcher's fixed settings win over the space's constants (Tune lets a searcher's
      suggestion override ``param_space``, so the suggestion drops those keys); so do the
      preset's (``base_keys``) unless this trial suggested the key.
    - Each trial's config gains ``study/optuna_number`` and ``study/searched_params``, and the
      Optuna trial the user attribute ``tune_trial_id``: rows trace to Optuna and back.
    - A non-finite objective is told as FAIL (Optuna would refuse it and leave the trial
      RUNNING). A trial stopped early by ASHA stays COMPLETE with its last value, marked with
      the user attribute ``stopped_at_round``.
    - :meth:`rebind` moves it to another copy of its journal (a resumed copy of a study); the
      move survives Tune's restore of the searcher's saved state.
    """

    def __init__(self, *args: Any, fixed_keys: tuple[str, ...] = (),
                 base_keys: tuple[str, ...] = (), **kwargs: Any) -> None:
        self._fixed_keys = tuple(fixed_keys)
        self._base_keys = tuple(base_keys)
        self._moved_to: optuna.storages.BaseStorage | None = None
        super().__init__(*args, **kwargs)

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if not isinstance(config, dict):
            return config
        ot_trial = ray_compat.optuna_trial(self, trial_id)
        drop = [*self._fixed_keys, *(k for k in self._base_keys if k not in ot_trial.params)]
        for key in drop:
            section, _, field = key.partition("/")
            if isinstance(config.get(section), dict):
                config[section].pop(field, None)
        ot_trial.set_user_attr("tune_trial_id", trial_id)
        config["study"] = {"optuna_number": ot_trial.number,
                           "searched_params": json.dumps(ot_trial.params, sort_keys=True)}
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        ot_trial = ray_compat.optuna_trial(self, trial_id)
        if ot_trial is None or ray_compat.is_told(self, trial_id):
            return super().on_trial_complete(trial_id, result, error)
        if result and not error:
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            values = [result.get(m) for m in metrics]
            checked = [*values, result.get("objective")]  # this round's, whatever is told
            if any(v is not None and not math.isfinite(v) for v in checked):
                ot_trial.set_user_attr("failure", f"non-finite objective {checked}")
                ray_compat.optuna_study(self).tell(ot_trial, None,
                                                   state=optuna.trial.TrialState.FAIL)
                ray_compat.mark_told(self, trial_id)
                return
            done, total = result.get("round"), result.get("rounds_total")
            if done is not None and total is not None and done < total:
                ot_trial.set_user_attr("stopped_at_round", int(done))
        return super().on_trial_complete(trial_id, result, error)

    def rebind(self, journal: optuna.storages.BaseStorage) -> None:
        """Continue the same Optuna study (same name, sampler state, running trials) in
        ``journal``, a copy of the journal it was created on."""
        study = ray_compat.optuna_study(self)
        moved = optuna.load_study(study_name=study.study_name, storage=journal,
                                  sampler=study.sampler, pruner=optuna.pruners.NopPruner())
        study_id = journal.get_study_id_from_name(study.study_name)
        trials = {tune_id: optuna.trial.Trial(
                      moved, journal.get_trial_id_from_study_id_trial_number(study_id, t.number))
                  for tune_id, t in ray_compat.optuna_trials(self).items()}
        ray_compat.set_optuna_study(self, journal, moved, trials)
        self._moved_to = journal

    def restore(self, checkpoint_path: str) -> None:
        """Tune's restore of the saved state, keeping a :meth:`rebind` made before it."""
        moved_to = getattr(self, "_moved_to", None)
        super().restore(checkpoint_path)
        if moved_to is not None:
            self.rebind(moved_to)
