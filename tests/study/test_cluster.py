"""study.cluster checks cluster.yaml as ``ray up`` does; the study on a real multi-node cluster.

The config tests run offline through :func:`study.cluster.check_cluster_config` (also
``python -m study.cluster check cluster.yaml``): Ray's schema, ``prepare_config`` and
``validate_config``, then the project's own rules. The cluster
tests start a head (CPU 0, like cluster.yaml's) and two worker nodes (2 CPUs and 1 logical GPU
each) as separate ``ray start`` processes on this machine, with token authentication pinned on
every node as cluster.yaml does, and run ``python -m study.launch --address`` against them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from study import cluster, layout
from study import results as R

REPO = Path(__file__).resolve().parents[2]
CLUSTER_YAML = REPO / "cluster.yaml"
RAY = str(Path(sys.executable).with_name("ray"))
STUDY_TIMEOUT_S = 900  # a hang guard, not a speed check: quiet, the module takes about 100 s
WORKERS = 2  # worker nodes of the test cluster
WORKER_CPUS = 2  # logical CPUs per worker node; 2 trials of 1 CPU and 0.5 GPU each
HEALTH_CHECK_ENV = {  # the head notices a dead node within ~3 s instead of ~30 s
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}

# ----------------------------------------------------------------------------- config checks


def test_cluster_config_passes_ray_and_project_checks() -> None:
    config = cluster.check_cluster_config(CLUSTER_YAML)
    gpu = config["available_node_types"]["gpu"]
    assert gpu["resources"] == {"CPU": 4, "GPU": 1} and gpu["min_workers"] == 0
    assert gpu["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert config["available_node_types"][config["head_node_type"]]["resources"]["CPU"] == 0
    # prepare_config merged the common setup into both roles, as ray up does
    assert config["worker_setup_commands"][:len(config["setup_commands"])] == \
        config["setup_commands"]


BROKEN = [  # (what is broken, old text, new text, error pattern)
    ("misspelled top-level key", "idle_timeout_minutes:", "idle_timeout_minute:",
     r"'idle_timeout_minute' was unexpected"),
    ("misspelled node key", "    min_workers: 0\n    max_workers: 8",
     "    min_worker: 0\n    max_workers: 8", r"'min_worker' was unexpected"),
    ("worker without resources", '    resources: {"CPU": 4, "GPU": 1}\n', "",
     r"'resources' is a required property"),
    ("fractional resources", '{"CPU": 4, "GPU": 1}', '{"CPU": 4, "GPU": 0.5}',
     r"0.5 is not of type 'integer'"),
    ("head without explicit resources", '{"CPU": 0, "GPU": 0}', "{}",
     r"node type 'head' must declare CPU and GPU"),
    ("head that runs trials", '{"CPU": 0, "GPU": 0}', '{"CPU": 4, "GPU": 0}',
     r"the head \('head'\) must run no trials"),
    ("no GPU worker", '{"CPU": 4, "GPU": 1}', '{"CPU": 4, "GPU": 0}',
     r"a worker type with GPU >= 1"),
    ("workers that never scale to zero", "    min_workers: 0\n    max_workers: 8",
     "    min_workers: 1\n    max_workers: 8", r"must autoscale from zero"),
    ("unpinned install", "-c constraints.txt -e .", "-e .", r"install the project with"),
    ("token auth not pinned", "RAY_AUTH_MODE=token ray start --head", "ray start --head",
     r"every `ray start` must run with RAY_AUTH_MODE=token"),
]


@pytest.mark.parametrize("what, old, new, match", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_cluster_config_fails(tmp_path: Path, capsys: pytest.CaptureFixture, what: str,
                                     old: str, new: str, match: str) -> None:
    text = CLUSTER_YAML.read_text()
    assert text.count(old) >= 1, f"cluster.yaml no longer contains {old!r}; update the test"
    broken = tmp_path / "cluster.yaml"
    broken.write_text(text.replace(old, new, 1))
    with pytest.raises((cluster.ClusterConfigError, ValueError), match=match):
        cluster.check_cluster_config(broken)
    # the command users run says the same in one line
    assert cluster.main(["check", str(broken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cluster.yaml") and re.search(match, err), err
    assert len(err.strip().splitlines()) == 1


def test_cluster_check_command_passes_cluster_yaml() -> None:
    out = subprocess.run([sys.executable, "-m", "study.cluster", "check", str(CLUSTER_YAML)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "passes Ray's checks" in out.stdout and "'gpu': 8" in out.stdout


@pytest.mark.parametrize("content, match", [
    ("- just\n- a list\n", r"cluster.yaml must be a YAML mapping, got list"),
    (None, r"No such file or directory: .*missing.yaml"),
])
def test_cluster_check_command_refuses_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 content: str | None, match: str) -> None:
    path = tmp_path / ("cluster.yaml" if content is not None else "missing.yaml")
    if content is not None:
        path.write_text(content)
    assert cluster.main(["check", str(path)]) == 2
    assert re.search(match, capsys.readouterr().err)


# ----------------------------------------------------------------------------- a real cluster


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class Node:
    proc: subprocess.Popen  # the `ray start` that started the node: its own process group
    node_manager_port: int
    cache: Path | None = None  # the node's NETINV_CACHE (workers only)
    node_id: str = ""

    def kill(self) -> None:
        """SIGKILL every process of this node (raylet, agents, trial workers), nothing else."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class LocalCluster:
    address: str
    env: dict[str, str]  # what a driver needs: RAY_AUTH_MODE=token and the token
    head: Node
    workers: list[Node] = field(default_factory=list)


def _start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        proc = subprocess.Popen([RAY, "start", *args, "--block", "--disable-usage-stats"],
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # a process group per node
    return proc


def _node_ports(ports: list[int]) -> list[str]:
    """Free ports for one node (the defaults would clash with other Ray instances here);
    worker processes take any free port (0, as ``ray.cluster_utils.Cluster`` does)."""
    nm, om, agent_listen, agent_grpc, metrics, env_agent = ports
    return [f"--node-manager-port={nm}", f"--object-manager-port={om}",
            f"--dashboard-agent-listen-port={agent_listen}",
            f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={env_agent}", "--min-worker-port=0",
            "--max-worker-port=0", "--object-store-memory=150000000"]


def _ray_nodes(address: str, env: dict[str, str]) -> list[dict[str, Any]]:
    code = ("import json, ray; ray.init(address=%r, logging_level='ERROR'); "
            "print(json.dumps([{k: n[k] for k in ('NodeID', 'Alive', 'NodeManagerPort', "
            "'Resources')} for n in ray.nodes()]))" % address)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def local_cluster() -> Any:
    """A head (CPU 0) and two worker nodes (2 CPUs, 1 logical GPU, own data cache each)."""
    # short temp dir: Ray's socket paths must stay under 107 characters
    root = Path(tempfile.mkdtemp(prefix="netinv-mn-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "NETINV_CACHE"))}
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                "PYTHONPATH": str(REPO)})
    gcs, dash, *head_ports = _free_ports(8)
    address = f"127.0.0.1:{gcs}"
    head = Node(_start_node(["--head", f"--port={gcs}", "--num-cpus=0", "--num-gpus=0",
                             "--include-dashboard=false", f"--dashboard-port={dash}",
                             f"--temp-dir={root / 'ray'}", *_node_ports(head_ports)],
                            {**env, **HEALTH_CHECK_ENV}, root / "head.log"),
                head_ports[0])
    cluster = LocalCluster(address=address, env=env, head=head)
    try:
        _wait_until(lambda: _can_connect(gcs) or head.proc.poll() is not None, "the head", 60)
        assert head.proc.poll() is None, (root / "head.log").read_text()[-3000:]
        by_port: dict[int, str] = {}

        def up(n: int) -> bool:
            nodes = _ray_nodes(address, env)
            by_port.update({n["NodeManagerPort"]: n["NodeID"] for n in nodes if n["Alive"]})
            return len(by_port) == n

        for i in range(WORKERS):  # one at a time: nodes starting together on one machine race
            ports = _free_ports(6)
            cache = root / f"cache-{i}"
            proc = _start_node([f"--address={address}", f"--num-cpus={WORKER_CPUS}",
                                "--num-gpus=1", *_node_ports(ports)],
                               {**env, "NETINV_CACHE": str(cache)}, root / f"worker-{i}.log")
            cluster.workers.append(Node(proc, ports[0], cache))
            try:
                _wait_until(lambda n=i + 2: up(n), f"worker node {i}", 90, every_s=1.0)
            except AssertionError as exc:
                logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}"
                                 for p in root.glob("*.log"))
                raise AssertionError(f"{exc}; up: {by_port}\n{logs}") from None
        for node in [head, *cluster.workers]:
            node.node_id = by_port[node.node_manager_port]
        yield cluster
    finally:
        for node in [*cluster.workers, head]:
            node.kill()
        for node in [*cluster.workers, head]:
            node.proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _can_connect(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait_until(predicate: Any, what: str, timeout_s: float, every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _launch(cluster: LocalCluster, *argv: str) -> subprocess.Popen:
    """``python -m study.launch --address <head>`` as its own driver process (as on the head)."""
    cmd = [sys.executable, "-m", "study.launch", "--address", cluster.address,
           "--cpus-per-trial", "1", "--gpus-per-trial", "0.5", "--no-asha", *argv]
    return subprocess.Popen(cmd, cwd=REPO, env=cluster.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> str:
    try:
        out, _ = proc.communicate(timeout=STUDY_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-4000:]
    return out


def _journal(study_dir: Path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(study_dir / layout.JOURNAL_FILE)))
    return optuna.load_study(study_name=name, storage=storage)


def _assert_one_study(study_dir: Path, name: str, n_trials: int) -> tuple[Any, Any]:
    """One Parquet dataset with every trial x round once; Optuna's journal has every trial."""
    trials = R.read_table(str(study_dir), "trials")
    rounds = R.read_table(str(study_dir), "rounds")
    ood = R.read_table(str(study_dir), "ood")
    assert len(trials) == n_trials and set(trials["status"]) == {R.COMPLETED}
    assert not rounds.duplicated([R.TRIAL_ID, R.ROUND]).any()
    assert not ood.duplicated([R.TRIAL_ID, R.ROUND, R.OOD_SET, R.SPLIT, R.SCORE]).any()
    for _, trial in trials.iterrows():
        got = sorted(rounds.loc[rounds[R.TRIAL_ID] == trial[R.TRIAL_ID], R.ROUND])
        assert got == list(range(int(trial["rounds/count"]) + 1)), (trial[R.TRIAL_ID], got)
        n_ood = ood[ood[R.TRIAL_ID] == trial[R.TRIAL_ID]].groupby(R.ROUND).size()
        assert sorted(n_ood.index) == got and n_ood.nunique() == 1
    study = _journal(study_dir, name)
    assert len(study.trials) == n_trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert ({t.user_attrs["tune_trial_id"] for t in study.trials}
            == set(trials[R.TRIAL_ID]))
    return trials, rounds


def test_study_runs_across_nodes_into_one_dataset(local_cluster: LocalCluster, tmp_path: Path,
                                                  data_root: Path) -> None:
    proc = _launch(local_cluster, "--space", "quick", "--name", "mn", "--num-samples", "4",
                   "--storage", str(tmp_path), "--data-root", str(data_root), "--seed", "3")
    out = _finish(proc)
    trials, rounds = _assert_one_study(tmp_path / "mn", "mn", 4)
    workers = {w.node_id for w in local_cluster.workers}
    # every row says where and with what it ran; nothing ran on the head
    assert trials[[R.NODE_ID, R.NODE_IP, "hostname"]].notna().all().all()
    assert set(trials["cpus"]) == {1.0} and set(trials["gpus"]) == {0.5}
    assert rounds[[R.NODE_ID, R.NODE_IP]].notna().all().all()
    assert set(rounds[R.CPUS]) == {1.0} and set(rounds[R.GPUS]) == {0.5}
    ood = R.read_table(str(tmp_path / "mn"), "ood")
    assert ood[[R.NODE_ID, R.NODE_IP]].notna().all().all()
    assert set(ood[R.GPUS]) == {0.5} and set(ood[R.NODE_ID]) <= workers
    assert set(rounds[R.NODE_ID]) <= workers and set(trials[R.NODE_ID]) <= workers
    assert len(set(trials[R.NODE_ID])) == 2, out[-3000:]  # 4 trials, 2 fit per node
    for _, row in trials.iterrows():  # a trial's rounds ran where its row says
        mine = rounds[rounds[R.TRIAL_ID] == row[R.TRIAL_ID]]
        assert set(mine[R.NODE_ID]) == {row[R.NODE_ID]}
    # each worker filled its own data cache once; the head, which ran no trial, needed none
    for worker in local_cluster.workers:
        assert worker.cache is not None and any(worker.cache.rglob("*.npy")), worker.cache


SLOW_SPACE = '''
"""Three slow rounds per trial, so that a node can be killed mid-round."""


def space(trial):
    trial.suggest_float("inversion/alpha_kl", 0.1, 10.0, log=True)
    return {
        "data/id": "mnist", "data/ood": ["fashionmnist", "cifar10"], "data/train_limit": 3000,
        "data/test_limit": 1000, "data/id_val_size": 500, "classifier/width": 8,
        "inversion/width": 8, "inversion/batch_size": 32, "inversion/samples_per_round": 300,
        "garbage/noise_count": 300, "rounds/eval_batch_size": 1024, "inversion/steps": 150,
        "rounds/count": 3,
    }
'''


def test_killed_node_trials_resume_on_surviving_node(local_cluster: LocalCluster,
                                                     tmp_path: Path, data_root: Path) -> None:
    """Kill one worker node's Ray processes mid-round: its trials resume on the other worker
    from their last finished round, and no finished round is lost or written twice.

    Runs last in this module: the cluster keeps one worker afterwards."""
    space = tmp_path / "slow_space.py"
    space.write_text(textwrap.dedent(SLOW_SPACE))
    study_dir = tmp_path / "fault"
    by_id = {w.node_id: w for w in local_cluster.workers}
    killed: dict[str, Any] = {}

    def kill_node_after_round_1() -> None:
        def first_round_1() -> Path | None:
            hits = sorted((study_dir / "results" / "rounds").glob("*/round-1.parquet"))
            return hits[0] if hits else None

        hit = _wait_until(first_round_1, "a trial's round 1", STUDY_TIMEOUT_S, every_s=0.05)
        import pyarrow.parquet as pq

        node_id = pq.read_table(hit).column(R.NODE_ID)[0].as_py()
        by_id[node_id].kill()  # its raylet, agents and trial workers, mid-round 2
        killed.update(node_id=node_id, trial_id=hit.parent.name, at=time.monotonic())

    killer = threading.Thread(target=kill_node_after_round_1, daemon=True)
    killer.start()
    proc = _launch(local_cluster, "--space", str(space), "--name", "fault", "--num-samples",
                   "2", "--storage", str(tmp_path), "--data-root", str(data_root))
    out = _finish(proc)
    killer.join(timeout=5)
    assert killed, "no node was killed"
    trials, rounds = _assert_one_study(study_dir, "fault", 2)
    survivor = next(w.node_id for w in local_cluster.workers if w.node_id != killed["node_id"])
    # every trial that had run on the killed node finished on the survivor, from a checkpoint
    hit = set(rounds.loc[rounds[R.NODE_ID] == killed["node_id"], R.TRIAL_ID])
    assert killed["trial_id"] in hit
    assert trials.set_index(R.TRIAL_ID).loc[killed["trial_id"], "attempts"] == 2, out[-3000:]
    for trial_id in hit:
        row = trials.set_index(R.TRIAL_ID).loc[trial_id]
        mine = rounds[rounds[R.TRIAL_ID] == trial_id].set_index(R.ROUND)
        if row["attempts"] == 1:  # finished before the kill (possible for the other trial)
            continue
        assert row["attempts"] == 2 and row[R.NODE_ID] == survivor, out[-3000:]
        again = mine[mine[R.ATTEMPT] == 1]
        resumed = int(again[R.RESUMED_FROM_ROUND].iloc[0])
        assert resumed >= 0 and (again[R.RESUMED_FROM_ROUND] == resumed).all()
        assert list(again.index) == list(range(resumed + 1, 4))  # resumed, not rerun
        assert set(again[R.NODE_ID]) == {survivor}
        first = mine[mine[R.ATTEMPT] == 0]
        assert list(first.index) == list(range(resumed + 1))
        assert set(first[R.NODE_ID]) == {killed["node_id"]}
