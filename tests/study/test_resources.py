"""study.resources: how many trials a cluster fits, counted before any trial is placed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from study import cluster, options, resources

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"


@pytest.mark.parametrize("node, need, fits", [
    ({"CPU": 4.0, "GPU": 1.0}, {"CPU": 1.0, "GPU": 0.25}, 4),
    ({"CPU": 2.0, "GPU": 1.0}, {"CPU": 1.0, "GPU": 0.25}, 2),  # CPUs run out first
    ({"CPU": 4.0}, {"CPU": 1.0, "GPU": 0.5}, 0),  # no GPU on the node
    ({"CPU": 3.0, "GPU": 1.0}, {"CPU": 1.0, "GPU": 0.0}, 3),  # GPU 0 asks for none
])
def test_trials_per_node(node: dict[str, float], need: dict[str, float], fits: int) -> None:
    assert resources.trials_per_node(node, need) == fits


def test_autoscaling_cluster_with_no_worker_up_yet_is_accepted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after ``ray up`` only the CPU-0 head is alive; the launcher must count the
    autoscaler's GPU workers (from the config ray up leaves on the head), not refuse."""
    import ray

    head_only = [{"Alive": True, "Resources": {"memory": 1e10, "object_store_memory": 1e9}}]
    monkeypatch.setattr(ray, "nodes", lambda: head_only)
    opts = options.parse_options(["--address", "auto", "--gpus-per-trial", "0.25",
                                  "--cpus-per-trial", "1", "--storage", str(tmp_path)])
    monkeypatch.setenv("NETINV_CLUSTER_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(options.LaunchError, match=r"no Ray node fits one trial"):
        resources.check_resources(opts)
    bootstrap = tmp_path / "ray_bootstrap_config.yaml"  # ray up writes the prepared config
    bootstrap.write_text(yaml.safe_dump(cluster.check_cluster_config(CLUSTER_YAML)))
    monkeypatch.setenv("NETINV_CLUSTER_CONFIG", str(bootstrap))
    assert resources.check_resources(opts) == 8 * 4  # max_workers x four 0.25-GPU trials each
