"""Ray for the launcher: start or join it, and check that the cluster fits the trials.

A trial that no node can fit would stay PENDING forever, so the launcher refuses it up front:
:func:`check_local_resources` before a local Ray starts, :func:`check_resources` on the running
cluster (counting the workers an autoscaling cluster may still start).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from study.options import LaunchError, Options, visible_gpus

LOCAL_AUTH_MODE = "disabled"  # RAY_AUTH_MODE for a local instance when the user set none
CLUSTER_CONFIG = "~/ray_bootstrap_config.yaml"  # where `ray up` puts its config on the head
FORWARDED_ENV = ("NETINV_CACHE", "NETINV_DATA", "RAY_AUTH_MODE")  # driver -> every worker


def init_ray(opts: Options) -> bool:
    """Start or join Ray; returns True when this call started it (and should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    repo = str(Path(__file__).resolve().parents[1])
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    for key in FORWARDED_ENV:
        if os.environ.get(key):
            env[key] = os.environ[key]
    if opts.address is None:
        # Ray 2.60 turns token auth on for new local clusters; say so explicitly either way
        os.environ.setdefault("RAY_AUTH_MODE", LOCAL_AUTH_MODE)
        env["RAY_AUTH_MODE"] = os.environ["RAY_AUTH_MODE"]
        num_gpus = opts.num_gpus if opts.num_gpus is not None else visible_gpus()
        ray.init(num_cpus=os.cpu_count(), num_gpus=num_gpus, include_dashboard=False,
                 runtime_env={"env_vars": env}, logging_level=logging.WARNING)
    else:
        ray.init(address=opts.address, runtime_env={"env_vars": env},
                 logging_level=logging.WARNING)
    return True


def trials_per_node(resources: dict[str, float], need: dict[str, float]) -> int:
    """Trials needing ``need`` (e.g. ``{"CPU": 1, "GPU": 0.25}``) that fit ``resources``."""
    return min(int(resources.get(k, 0.0) / v + 1e-9) for k, v in need.items() if v > 0)


def autoscaler_capacity(need: dict[str, float]) -> int | None:
    """Trials an autoscaling cluster fits once every worker it may start is up, or None.

    Read from the cluster launcher's config on the head (``$NETINV_CLUSTER_CONFIG``, default
    ``~/ray_bootstrap_config.yaml``, which ``ray up`` writes): each node type's ``resources``
    times its ``max_workers`` (1 for the head type). None when there is no such file.
    """
    import yaml

    path = Path(os.environ.get("NETINV_CLUSTER_CONFIG") or CLUSTER_CONFIG).expanduser()
    if not path.is_file():
        return None
    config = yaml.safe_load(path.read_text()) or {}
    limit = int(config.get("max_workers", 0))
    fits = 0
    for name, node_type in (config.get("available_node_types") or {}).items():
        count = 1 if name == config.get("head_node_type") else min(
            int(node_type.get("max_workers", limit)), limit)
        fits += count * trials_per_node(node_type.get("resources") or {}, need)
    return fits


def check_resources(opts: Options) -> int:
    """Error when no node fits one trial; returns how many trials the cluster fits at once.

    On an autoscaling cluster (``ray up``, ``min_workers: 0``) the workers may not be up yet:
    then the node types of the autoscaler's config count, not only the live nodes.
    """
    import ray

    need = {"CPU": opts.cpus_per_trial, "GPU": opts.gpus_per_trial}
    nodes: list[dict[str, Any]] = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    now = sum(trials_per_node(res, need) for res in nodes)
    later = autoscaler_capacity(need) if opts.address is not None else None
    if not now and not later:
        have = ", ".join(f"CPU={r.get('CPU', 0):g} GPU={r.get('GPU', 0):g}" for r in nodes)
        hint = (" (declare logical GPUs with --num-gpus 1 for a local test)"
                if opts.gpus_per_trial > 0 else "")
        raise LaunchError(f"no Ray node fits one trial: each needs CPU={opts.cpus_per_trial:g} "
                          f"GPU={opts.gpus_per_trial:g}, the nodes have [{have}]{hint}; "
                          f"otherwise trials would stay PENDING forever.")
    if not now:
        print(f"no live node fits a trial yet: the autoscaler starts workers for them "
              f"(up to {later} trials at once)")
    return max(1, now, later or 0)


def check_local_resources(opts: Options) -> None:
    """Before a local Ray starts: the trial must fit this machine."""
    import ray

    if opts.address is not None or ray.is_initialized():
        return  # a running cluster is checked by check_resources
    cpus = os.cpu_count() or 1
    if opts.cpus_per_trial > cpus:
        raise LaunchError(f"--cpus-per-trial must be <= this machine's {cpus} CPUs, got "
                          f"{opts.cpus_per_trial:g}.")
    gpus = opts.num_gpus if opts.num_gpus is not None else visible_gpus()
    if opts.gpus_per_trial > 0 and gpus < opts.gpus_per_trial:
        raise LaunchError(f"--gpus-per-trial {opts.gpus_per_trial:g} needs a GPU, this machine "
                          f"has {gpus:g}; use --gpus-per-trial 0, or --num-gpus 1 to declare a "
                          f"logical GPU for a test.")
