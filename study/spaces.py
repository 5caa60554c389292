"""Find a search space by name or path and check it before any Ray process starts.

A space is a module-level function ``space(trial) -> dict`` (see ``search_spaces/``). It is
passed to ``OptunaSearch``, which pickles it with the searcher's state, so it must be importable
by reference: built-in spaces live in the ``search_spaces`` package, and a user's file is
imported as a real module registered in ``sys.modules`` under a name derived from its path
(``load_space`` does this again on ``--resume`` before the searcher is unpickled).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import pkgutil
import sys
from pathlib import Path
from typing import Any, Callable

import optuna

import search_spaces
from netinv.config import Config

SPACE_FUNCTION = "space"  # the function every space file defines
VALIDATION_SAMPLES = 8  # trials drawn from an in-memory study to exercise the space's branches
USER_MODULE_PREFIX = "netinv_user_space_"  # sys.modules name of an imported user space file

SpaceFn = Callable[[Any], dict]


class SpaceError(ValueError):
    """A search space is malformed; the message names the space, the key and the fix."""


def builtin_names() -> list[str]:
    """Names of the spaces in the ``search_spaces`` package, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(search_spaces.__path__))


def _import_user_file(path: Path) -> Any:
    """Import ``path`` as a module registered in ``sys.modules`` (pickle finds it by name)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"{USER_MODULE_PREFIX}{path.stem.replace('-', '_')}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SpaceError(f"cannot import the search space file, got path={str(path)!r}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SpaceError(f"importing the search space file {str(path)!r} failed: "
                         f"{type(exc).__name__}: {exc}") from exc
    return module


def load_space(name_or_path: str) -> tuple[SpaceFn, dict[str, Any]]:
    """Load a search space's function and the constants it returns.

    Args:
        name_or_path: A built-in name (``default``, ``quick``, ``paper``) or the path of a
            ``.py`` file that defines ``space(trial) -> dict``.

    Returns:
        (the module-level ``space`` function, the constants one call of it returns). The
        constants are taken from a trial of an in-memory study; a space whose constants depend
        on its suggestions returns one such set.

    Raises:
        SpaceError: Unknown name (the message lists the valid ones), a file that does not exist
            or fails to import, or no module-level function ``space``.
    """
    text = str(name_or_path)
    if text.endswith(".py") or "/" in text or Path(text).is_file():
        path = Path(text).expanduser().resolve()
        if not path.is_file():
            raise SpaceError(f"the search space file must exist, got path={str(path)!r}.")
        module = _import_user_file(path)
        where = str(path)
    else:
        names = builtin_names()
        if text not in names:
            raise SpaceError(f"unknown search space {text!r}; built-in spaces: "
                             f"{', '.join(names)} (or give the path of a .py file).")
        module = importlib.import_module(f"search_spaces.{text}")
        where = f"search_spaces/{text}.py"
    fn = getattr(module, SPACE_FUNCTION, None)
    if fn is None:
        raise SpaceError(f"a search space file must define a module-level function "
                         f"`{SPACE_FUNCTION}(trial) -> dict`; {where} has none.")
    if not inspect.isfunction(fn):
        raise SpaceError(f"`{SPACE_FUNCTION}` in {where} must be a function, got "
                         f"{type(fn).__name__}.")
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    constants = _call(fn, trial)
    return fn, constants


def _call(fn: SpaceFn, trial: Any) -> dict[str, Any]:
    """Call the space on ``trial``; rephrase Optuna's range errors naming the parameter."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    try:
        result = fn(_NamingTrial(trial))
    except _ParamError as exc:
        raise SpaceError(str(exc)) from exc.__cause__
    except Exception as exc:
        raise SpaceError(f"the search space {name} raised {type(exc).__name__}: {exc}") from exc
    if result is None:
        return {}
    if not isinstance(result, dict) or not all(isinstance(k, str) for k in result):
        raise SpaceError(f"the search space {name} must return a dict of constants with "
                         f"'section/field' keys (or None), got {type(result).__name__}.")
    return result


class _ParamError(Exception):
    pass


class _NamingTrial:
    """Wraps an Optuna trial so that a bad range names the parameter that has it."""

    def __init__(self, trial: Any) -> None:
        self._trial = trial

    def __getattr__(self, item: str) -> Any:
        attr = getattr(self._trial, item)
        if not item.startswith("suggest_"):
            return attr

        def suggest(name: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return attr(name, *args, **kwargs)
            except (ValueError, TypeError) as exc:
                raise _ParamError(f"parameter {name!r} has an impossible range: {exc}") from exc

        return suggest


def _close_keys(key: str) -> str:
    matches = difflib.get_close_matches(key, Config.keys(), n=3, cutoff=0.5)
    if not matches:
        section = key.partition("/")[0]
        matches = [k for k in Config.keys() if k.startswith(section + "/")]
    return ", ".join(matches) if matches else ", ".join(Config.keys())


def check_keys(params: dict[str, Any], where: str) -> None:
    """Raise SpaceError naming any key Config does not have, with its closest valid keys."""
    valid = set(Config.keys())
    for key in params:
        if key not in valid:
            raise SpaceError(f"{where} uses {key!r}, which is not a config key; "
                             f"did you mean: {_close_keys(key)}?")


def validate_space(fn: SpaceFn, base: dict[str, Any] | None = None, *,
                   samples: int = VALIDATION_SAMPLES, seed: int = 0) -> list[dict[str, Any]]:
    """Run the space a few times on an in-memory Optuna study and check what it proposes.

    Every sampled config (suggestions plus returned constants, on top of ``base``) must build a
    valid :class:`netinv.config.Config`. Nothing here starts Ray.

    Args:
        fn: The space function.
        base: Flat settings applied last (the launcher's fixed options); None = none.
        samples: Trials drawn (random sampler, so every branch is likely visited), >= 1.
        seed: Seed of the random sampler.

    Returns:
        The flat config overrides of each sample (suggestions, constants, then ``base``).

    Raises:
        SpaceError: ``fn`` is not a function, returns something other than a dict, suggests or
            returns a key Config does not have, a value Config rejects (Config's message is
            kept), or a range Optuna rejects (``low > high``, ``log`` with ``low <= 0``).
    """
    if not inspect.isfunction(fn):
        raise SpaceError(f"a search space must be a module-level function `space(trial) -> "
                         f"dict`, got {type(fn).__name__}.")
    if fn.__qualname__ != fn.__name__ or "<locals>" in fn.__qualname__:
        raise SpaceError(f"a search space must be defined at module level (OptunaSearch "
                         f"pickles it by reference), got {fn.__qualname__}.")
    base = dict(base or {})
    check_keys(base, "the launcher's fixed settings")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    name = f"{fn.__module__}.{fn.__name__}"
    out = []
    for _ in range(samples):
        trial = study.ask()
        constants = _call(fn, trial)
        check_keys(trial.params, f"the search space {name} suggests a parameter that")
        check_keys(constants, f"the search space {name} returns a constant that")
        both = set(trial.params) & set(constants)
        if both:
            raise SpaceError(f"the search space {name} both suggests and returns "
                             f"{', '.join(sorted(both))}; keep one.")
        flat = {**trial.params, **constants, **base}
        try:
            Config.from_flat(flat)
        except KeyError as exc:
            raise SpaceError(f"the search space {name} proposes an invalid config: "
                             f"{exc.args[0]}") from exc
        except (TypeError, ValueError) as exc:
            raise SpaceError(f"the search space {name} proposes an invalid config: {exc} "
                             f"(params: {trial.params})") from exc
        study.tell(trial, 0.0)
        out.append(flat)
    return out


def suggested_keys(fn: SpaceFn, samples: int = VALIDATION_SAMPLES, seed: int = 0) -> list[str]:
    """Every key the space suggests over ``samples`` random trials, in first-seen order."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    keys: dict[str, None] = {}
    for _ in range(samples):
        trial = study.ask()
        _call(fn, trial)
        keys.update(dict.fromkeys(trial.params))
        study.tell(trial, 0.0)
    return list(keys)
