"""study.results: atomic Parquet writes, one schema per table, replace-not-duplicate, readers."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from netinv.config import Config
from netinv.pipeline import RunResult, run_rounds
from netinv.records import OOD_ROW_FIELDS, OOD_ROWS, RECORD_FIELDS
from study import storage
from study import results as R
from study.trainable import finish_trial

TINY = {"data/train_limit": 1000, "data/test_limit": 200, "data/id_val_size": 200,
        "data/ood": ["fashionmnist", "cifar10"], "inversion/steps": 5, "rounds/count": 1,
        "classifier/width": 8, "inversion/width": 8, "inversion/samples_per_round": 50,
        "garbage/noise_count": 50}


@pytest.fixture(scope="module")
def run(data_root: Path) -> RunResult:
    """A real two-round run (round 0 has no inversion losses: nulls in the Parquet rows)."""
    return run_rounds(Config.from_flat({**TINY, "data/root": str(data_root),
                                        "data/download": False}))


def _write(study_dir: str, trial_id: str, records: list[dict[str, Any]], **extra: Any) -> None:
    for record in records:
        R.write_round(study_dir, study="s", trial_id=trial_id, record=record,
                      objective=0.5 + record["round"] / 10, extra=extra or None)


def test_rounds_schema_unifies_round0_nulls(tmp_path: Path, run: RunResult) -> None:
    study_dir = str(tmp_path / "s")
    assert run.records[0][R.INVERSION_LOSS] is None
    _write(study_dir, "t1", run.records, node_ip="10.0.0.1")
    rounds = R.read_table(study_dir, "rounds")
    assert list(rounds[R.ROUND]) == [0, 1]
    assert pd.isna(rounds.loc[0, R.INVERSION_LOSS])
    assert rounds.loc[1, R.INVERSION_LOSS] == pytest.approx(run.records[1][R.INVERSION_LOSS])
    assert rounds[R.INVERSION_LOSS].dtype == "float64"
    assert list(rounds.columns) == R.ROUNDS_SCHEMA.names
    assert set(rounds[R.NODE_IP]) == {"10.0.0.1"}
    # the same folder read by plain pyarrow, without our schema: every file has the same one
    table = ds.dataset(str(tmp_path / "s" / "results" / "rounds")).to_table()
    assert table.num_rows == 2 and table.schema.equals(R.ROUNDS_SCHEMA)
    ood = R.read_table(study_dir, "ood")
    assert len(ood) == sum(len(rec["ood"]) for rec in run.records)
    assert set(ood[R.SPLIT]) == {R.VAL, R.TEST}
    assert set(ood[R.SCORE]) == {R.UE, R.UE_TIERED, R.MSP, R.P_GARBAGE, R.ENERGY}


def test_every_record_field_has_a_column(run: RunResult) -> None:
    # a real record holds exactly the listed fields, and the Parquet schema has each of them,
    # so a new record key cannot be dropped silently on its way to the rounds table
    for record in run.records:
        assert sorted(k for k in record if k != OOD_ROWS) == sorted(RECORD_FIELDS)
        for row in record[OOD_ROWS]:
            assert sorted(row) == sorted(OOD_ROW_FIELDS)
    assert set(RECORD_FIELDS) <= set(R.ROUNDS_SCHEMA.names)
    assert set(OOD_ROW_FIELDS) <= set(R.OOD_SCHEMA.names)
    for name, field in RECORD_FIELDS.items():
        arrow = R.ROUNDS_SCHEMA.field(name).type
        assert str(arrow) == {int: "int64", float: "double", bool: "bool"}[field.type], name


def test_rewriting_a_round_replaces_it(tmp_path: Path, run: RunResult) -> None:
    study_dir = str(tmp_path / "s")
    _write(study_dir, "t1", run.records, attempt=0)
    again = copy.deepcopy(run.records[1])
    again[R.ID_VAL_ACCURACY] = 0.123
    R.write_round(study_dir, study="s", trial_id="t1", record=again, objective=0.9,
                  extra={R.ATTEMPT: 1, R.RESUMED_FROM_ROUND: 0})
    rounds = R.read_table(study_dir, "rounds")
    assert len(rounds) == 2
    last = rounds[rounds[R.ROUND] == 1].iloc[0]
    assert last[R.ID_VAL_ACCURACY] == 0.123 and last[R.OBJECTIVE] == 0.9
    assert last[R.ATTEMPT] == 1 and last[R.RESUMED_FROM_ROUND] == 0
    assert len(R.read_table(study_dir, "ood")) == sum(len(r["ood"]) for r in run.records)


def test_writes_are_atomic_and_temp_files_invisible(tmp_path: Path, run: RunResult) -> None:
    study_dir = str(tmp_path / "s")
    _write(study_dir, "t1", run.records)
    folder = tmp_path / "s" / "results" / "rounds" / "t1"
    assert sorted(p.name for p in folder.iterdir()) == ["round-0.parquet", "round-1.parquet"]
    # a writer killed mid-write leaves only a "."-prefixed temp file, which readers skip
    (folder / ".round-2.parquet.deadbeef.tmp").write_bytes(b"PAR1 half a file")
    assert len(R.read_table(study_dir, "rounds")) == 2
    assert ds.dataset(str(folder.parent)).to_table().num_rows == 2


def test_empty_tables_have_their_columns(tmp_path: Path) -> None:
    for table, schema in R.SCHEMAS.items():
        frame = R.read_table(str(tmp_path / "nothing"), table)
        assert frame.empty and list(frame.columns) == schema.names
    with pytest.raises(ValueError, match="`table` must be one of trials, rounds, ood"):
        R.read_table(str(tmp_path), "epochs")


def test_trial_row_round_trip_and_final_status(tmp_path: Path, run: RunResult) -> None:
    study_dir = str(tmp_path / "s")
    config = Config.from_flat(run.state.config)
    started = datetime(2026, 1, 1, tzinfo=timezone.utc)
    R.write_trial(study_dir, {R.STUDY: "s", R.TRIAL_ID: "t1", "status": R.RUNNING,
                              "optuna_number": 0, "started_at": started, "rounds_done": 1,
                              **R.config_row(config)})
    R.write_trial(study_dir, {R.STUDY: "s", R.TRIAL_ID: "t2", "status": R.RUNNING})
    finish_trial(study_dir, "t1", status=R.COMPLETED)
    finish_trial(study_dir, "t2", status=R.FAILED, reason="NonFiniteLossError: nan")
    trials = R.read_table(study_dir, "trials").set_index(R.TRIAL_ID)
    assert trials.loc["t1", "status"] == R.COMPLETED and trials.loc["t1", "wall_s"] > 0
    assert trials.loc["t2", "failure_reason"] == "NonFiniteLossError: nan"
    assert trials.loc["t1", "data/ood"] == "fashionmnist,cifar10"  # lists comma-joined
    assert pd.isna(trials.loc["t1", "garbage/pool_cap"])  # None -> null
    assert trials.loc["t1", "inversion/alpha_kl"] == config.inversion.alpha_kl
    assert Config.from_json(trials.loc["t1", "config_json"]) == config
    assert pd.isna(trials.loc["t2", "inversion/alpha_kl"])
    # every Config key is a column named exactly as the key
    assert set(Config.keys()) <= set(trials.columns)
    # a file written with the explicit schema reads back with pyarrow alone
    path = tmp_path / "s" / "results" / "trials" / "t1.parquet"
    assert pq.read_schema(path).equals(R.TRIALS_SCHEMA)


def test_finish_trial_without_a_row_uses_the_tune_config(tmp_path: Path) -> None:
    study_dir = str(tmp_path / "s")
    tune_config = {"inversion": {"alpha_kl": 2.5}, "rounds": {"seed": 4},
                   "study": {"optuna_number": 7, "searched_params": '{"a": 1}'}}
    finish_trial(study_dir, "t9", status=R.FAILED, reason="RayActorError: died",
                 config=tune_config, study="s")
    row = R.read_trial(study_dir, "t9")
    assert row is not None
    assert (row["optuna_number"], row["seed"], row["inversion/alpha_kl"]) == (7, 4, 2.5)
    assert row["failure_reason"] == "RayActorError: died" and row["status"] == R.FAILED


def test_put_bytes_replaces_in_place(tmp_path: Path) -> None:
    uri = str(tmp_path / "a" / "b.bin")
    storage.put_bytes(uri, b"one")
    storage.put_bytes(uri, b"two")
    assert storage.get_bytes(uri) == b"two"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]
    assert storage.get_bytes(str(tmp_path / "missing")) is None
