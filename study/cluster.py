"""Check a Ray cluster launcher config (cluster.yaml) offline, as ``ray up`` would, plus ours.

    python -m study.cluster check cluster.yaml

Ray's part: ``yaml.safe_load``, ``prepare_config`` (merges the provider's defaults.yaml) and
``validate_config`` (Ray's JSON schema), which is what ``ray up`` runs before it asks the cloud
anything; the next steps of ``ray up`` (filling in resources, IAM and network) need an account
and are not run. The project's part: a head that runs no trials (CPU 0), a GPU worker type that
autoscales from zero, explicit CPU and GPU on every node type, an idle timeout, setup that
installs this project with constraints.txt, the code and Ray's token mounted, and
``RAY_AUTH_MODE=token`` on every ``ray start``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import jsonschema
import yaml

from netinv.cli_errors import run_cli
from netinv.cli_logging import add_logging_options, apply_logging_options
from study import ray_compat

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"  # the pinned versions setup_commands must install
TOKEN_FILE = "~/.ray/auth_token"


class ClusterConfigError(ValueError):
    """cluster.yaml breaks one of the project's rules (Ray's own checks passed)."""


def check_cluster_config(path: str | Path, *, constraints: str | Path = CONSTRAINTS
                         ) -> dict[str, Any]:
    """Check a cluster launcher config as ``ray up`` does first, then the project's rules.

    Args:
        path: The YAML file.
        constraints: The pins file whose ``ray==`` version the setup must install.

    Returns:
        The prepared config (what the autoscaler on the head would read).

    Raises:
        ClusterConfigError: Ray's schema or a project rule refuses it; the message names the
            file and the key or rule.
        ValueError: Ray's ``prepare_config`` refuses it.
    """
    path = Path(path)
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ClusterConfigError(f"{path.name} must be a YAML mapping, got "
                                 f"{type(raw).__name__}.")
    try:
        config = ray_compat.prepare_and_validate(raw)
    except jsonschema.ValidationError as err:  # not a ValueError: give it the file's name
        where = "/".join(str(k) for k in err.absolute_path) or "the top level"
        raise ClusterConfigError(f"{path.name}: Ray's schema refuses {where}: "
                                 f"{err.message}") from None

    def need(condition: bool, rule: str) -> None:
        if not condition:
            raise ClusterConfigError(f"{path.name}: {rule}")

    _check_node_types(raw, config, need)
    _check_setup(config, Path(constraints), need)
    _check_auth(config, need)
    return config


def _check_node_types(raw: dict[str, Any], config: dict[str, Any], need: Any) -> None:
    """A CPU-0 head, explicit CPU and GPU everywhere, GPU workers that scale from zero."""
    types = config["available_node_types"]
    head = config["head_node_type"]
    for name in types:
        declared = raw["available_node_types"][name].get("resources") or {}
        need({"CPU", "GPU"} <= set(declared),
             f"node type {name!r} must declare CPU and GPU in `resources`, got {declared}.")
    need(types[head]["resources"]["CPU"] == 0,
         f"the head ({head!r}) must run no trials: resources CPU must be 0, got "
         f"CPU={types[head]['resources']['CPU']}.")
    gpu_types = [n for n, t in types.items()
                 if n != head and t["resources"]["GPU"] >= 1 and t["resources"]["CPU"] >= 1
                 and t["max_workers"] >= 1]
    need(bool(gpu_types), "a worker type with GPU >= 1, CPU >= 1 and max_workers >= 1 must "
                          "exist.")
    need(all(types[n]["min_workers"] == 0 for n in gpu_types),
         "GPU worker types must autoscale from zero (min_workers: 0).")
    need(config.get("idle_timeout_minutes", 0) > 0, "idle_timeout_minutes must be > 0.")


def _check_setup(config: dict[str, Any], constraints: Path, need: Any) -> None:
    """The repo mounted once, installed with its pins, and the Ray version of the pins."""
    mounts = {k: str(v) for k, v in config["file_mounts"].items()}
    code = [remote for remote, local in mounts.items() if local in (".", "./")]
    need(len(code) == 1, f"file_mounts must copy the repo ('.') to one remote folder, got "
                         f"{mounts}.")
    setup = " ".join(config["setup_commands"])
    need(f"cd {code[0]}" in setup and "-c constraints.txt" in setup
         and re.search(r"install\b.*-e \.", setup) is not None,
         f"setup_commands must `cd {code[0]}` and install the project with "
         f"`-c constraints.txt -e .`.")
    pins = dict(line.split("==", 1) for line in constraints.read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for pin in re.findall(r"ray\[[a-z,]+\]==([\w.]+)", setup):
        need(pin == pins.get("ray"),
             f"setup installs ray {pin}, {constraints.name} pins {pins.get('ray')}.")


def _ray_start_lines(commands: list[str]) -> list[str]:
    return [c for c in commands if re.search(r"\bray start\b", c)]


def _check_auth(config: dict[str, Any], need: Any) -> None:
    """Token authentication pinned on every node: the token mounted, the mode on every start."""
    need(TOKEN_FILE in config["file_mounts"],
         f"file_mounts must copy {TOKEN_FILE} to every node.")
    starts = (_ray_start_lines(config["head_start_ray_commands"])
              + _ray_start_lines(config["worker_start_ray_commands"]))
    need(len(starts) >= 2 and all("RAY_AUTH_MODE=token" in c for c in starts),
         "every `ray start` must run with RAY_AUTH_MODE=token.")


def _main(argv: Sequence[str] | None) -> int:
    p = argparse.ArgumentParser(prog="python -m study.cluster", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check a cluster launcher config offline")
    check.add_argument("config", help="the YAML file, e.g. cluster.yaml")
    add_logging_options(p)
    a = p.parse_args(argv)
    apply_logging_options(a)
    config = check_cluster_config(a.config)
    workers = {n: t["max_workers"] for n, t in config["available_node_types"].items()
               if n != config["head_node_type"]}
    print(f"{a.config}: passes Ray's checks (prepare_config, validate_config, Ray "
          f"{ray_compat.RAY_VERSION_CHECKED}) and the project's; worker types (max_workers): "
          f"{workers}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when the config passes, 2 with one ``error:`` line when it does not."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
