"""A study's results as Parquet, durable while the study runs.

Where each file lives is :mod:`study.layout`'s (``results/{trials,rounds,ood}/...``).
Each table has one explicit schema (below), so files whose optional columns are all null (round
0 has no inversion losses) still unify. Files are written atomically
(:func:`study.storage.put_bytes`). File names are
fixed per (trial, round): a retried or resumed round replaces its file instead of adding one.

Read a table with :func:`read_table`, or directly::

    pyarrow.dataset.dataset("studies/s1/results/rounds", schema=ROUNDS_SCHEMA).to_table()
    duckdb.sql("select * from 'studies/s1/results/rounds/*/*.parquet'")
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from netinv import records
from netinv.config import Config
from study import layout, storage

TABLES = ("trials", "rounds", "ood")

# ----------------------------------------------------------------------------- column names

STUDY = "study"
TRIAL_ID = "trial_id"
ROUND = "round"
OBJECTIVE = "objective"
NODE_ID = "node_id"
NODE_IP = "node_ip"
CPUS = "cpus"
GPUS = "gpus"

# trial status values
RUNNING = "running"
COMPLETED = "completed"
STOPPED = "stopped"  # stopped early by the scheduler (ASHA)
FAILED = "failed"
STATUSES = (RUNNING, COMPLETED, STOPPED, FAILED)

# round record fields (netinv.pipeline's record keys)
GARBAGE_SIZE = "garbage_size"
GARBAGE_ADDED = "garbage_added"
CLASSIFIER_LOSS = "classifier_loss"
INVERSION_LOSS = "inversion_loss"
INVERSION_KL = "inversion_kl"
INVERSION_CE = "inversion_ce"
INVERSION_COSINE = "inversion_cosine"
INVERSION_ORTHO = "inversion_ortho"
ID_VAL_ACCURACY = "id_val_accuracy"
ID_TEST_ACCURACY = "id_test_accuracy"
ID_VAL_GARBAGE_SHARE = "id_val_garbage_share"
ID_TEST_GARBAGE_SHARE = "id_test_garbage_share"
TIME_INVERT_S = "time_invert_s"
TIME_EXCLUDE_S = "time_exclude_s"
TIME_TRAIN_S = "time_train_s"
TIME_EVAL_S = "time_eval_s"
TIME_ROUND_S = "time_round_s"
ATTEMPT = "attempt"  # 0 for a trial's first start, +1 per restart (failure retry, --resume)
RESUMED_FROM_ROUND = "resumed_from_round"  # checkpoint round this attempt began after; null

# OOD rows
OOD_SET = "ood_set"
SPLIT = "split"
SCORE = "score"
AUROC = "auroc"
AUPR_IN = "aupr_in"
AUPR_OUT = "aupr_out"
FPR95 = "fpr95"  # ID positive (ODIN / Energy)
FPR95_OOD_POSITIVE = "fpr95_ood_positive"  # OOD positive (OpenOOD v1.5, pytorch-ood)
GARBAGE_SHARE = "garbage_share"

# scores (netinv.scores.SCORES) and splits, for filters such as df[SCORE] == UE_TIERED
UE = "ue"
UE_TIERED = "ue_tiered"
MSP = "msp"
P_GARBAGE = "p_garbage"
ENERGY = "energy"
VAL = "val"
TEST = "test"

# ----------------------------------------------------------------------------- schemas

_CONFIG_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}


def _config_fields() -> list[pa.Field]:
    """One column per Config flat key, typed from the field's annotation; lists as strings."""
    import dataclasses
    import types
    import typing

    from netinv.config import SECTIONS

    out = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if isinstance(hint, types.UnionType):
                hint = next(a for a in typing.get_args(hint) if a is not type(None))
            arrow = _CONFIG_TYPES.get(hint, pa.string())  # tuples: comma-joined names
            out.append(pa.field(f"{section}/{f.name}", arrow))
    return out


TRIALS_SCHEMA = pa.schema([
    pa.field(STUDY, pa.string()),
    pa.field(TRIAL_ID, pa.string()),
    pa.field("optuna_number", pa.int64()),
    pa.field("status", pa.string()),  # one of STATUSES
    pa.field("failure_reason", pa.string()),
    pa.field("seed", pa.int64()),
    pa.field("rounds_done", pa.int64()),  # highest finished round (0 = baseline only)
    pa.field("attempts", pa.int64()),  # times the trial started (1 = never restarted)
    pa.field("objective_name", pa.string()),  # e.g. "ue_tiered:auroc" (val split, mean)
    pa.field(OBJECTIVE, pa.float64()),  # best val objective over finished rounds
    pa.field("best_round", pa.int64()),
    pa.field("started_at", pa.timestamp("us", tz="UTC")),
    pa.field("ended_at", pa.timestamp("us", tz="UTC")),
    pa.field("wall_s", pa.float64()),
    pa.field(NODE_ID, pa.string()),
    pa.field(NODE_IP, pa.string()),
    pa.field("hostname", pa.string()),
    pa.field(CPUS, pa.float64()),
    pa.field(GPUS, pa.float64()),
    pa.field("device", pa.string()),
    pa.field("bf16", pa.bool_()),  # bf16 autocast in use (rounds/amp, and it pays on the node)
    pa.field("torch_version", pa.string()),
    pa.field("ray_version", pa.string()),
    pa.field("optuna_version", pa.string()),
    pa.field("netinv_version", pa.string()),
    pa.field("python_version", pa.string()),
    pa.field("searched_params", pa.string()),  # JSON of the params Optuna proposed
    pa.field("config_json", pa.string()),  # JSON of the full resolved flat config
    *_config_fields(),
])

# one column per netinv.records.RECORD_FIELDS key (round is a key column above), so a new record
# key becomes a column instead of being dropped
_RECORD_TYPES = {int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
_RECORD_FIELDS = [pa.field(name, _RECORD_TYPES[f.type])
                  for name, f in records.RECORD_FIELDS.items() if name != ROUND]
RECORD_FIELDS = tuple(f.name for f in _RECORD_FIELDS)

# where and with what a round ran: on every rounds and OOD row, so no row needs a join to say it
_PLACEMENT_FIELDS = [
    pa.field(NODE_ID, pa.string()),
    pa.field(NODE_IP, pa.string()),
    pa.field(CPUS, pa.float64()),  # the trial's logical CPUs
    pa.field(GPUS, pa.float64()),  # the trial's (fractional) GPUs
]
PLACEMENT_FIELDS = tuple(f.name for f in _PLACEMENT_FIELDS)

ROUNDS_SCHEMA = pa.schema([
    pa.field(STUDY, pa.string()),
    pa.field(TRIAL_ID, pa.string()),
    pa.field(ROUND, pa.int64()),
    pa.field(OBJECTIVE, pa.float64()),  # the study's objective on the val split, this round
    *_RECORD_FIELDS,
    pa.field(ATTEMPT, pa.int64()),
    pa.field(RESUMED_FROM_ROUND, pa.int64()),
    *_PLACEMENT_FIELDS,
])

OOD_SCHEMA = pa.schema([
    pa.field(STUDY, pa.string()),
    pa.field(TRIAL_ID, pa.string()),
    pa.field(ROUND, pa.int64()),
    pa.field(OOD_SET, pa.string()),
    pa.field(SPLIT, pa.string()),  # VAL or TEST
    pa.field(SCORE, pa.string()),  # a netinv.scores.SCORES or FITTED_SCORES name
    pa.field(AUROC, pa.float64()),
    pa.field(AUPR_IN, pa.float64()),  # ID positive
    pa.field(AUPR_OUT, pa.float64()),  # OOD positive
    pa.field(FPR95, pa.float64()),  # ID positive: OOD accepted at 95% ID accepted
    pa.field(FPR95_OOD_POSITIVE, pa.float64()),  # OOD positive: ID flagged at 95% OOD flagged
    pa.field(GARBAGE_SHARE, pa.float64()),  # share of the OOD split predicted as garbage
    *_PLACEMENT_FIELDS,
])

SCHEMAS = {"trials": TRIALS_SCHEMA, "rounds": ROUNDS_SCHEMA, "ood": OOD_SCHEMA}

# ----------------------------------------------------------------------------- rows


def write_rows(uri: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    """Write ``rows`` as one Parquet file with ``schema`` (missing columns become null)."""
    columns = {f.name: [row.get(f.name) for row in rows] for f in schema}
    table = pa.Table.from_pydict(columns, schema=schema)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    storage.put_bytes(uri, buffer.getvalue())


def config_columns(flat: dict[str, Any]) -> dict[str, Any]:
    """Config flat keys -> column values: lists comma-joined, None kept as null."""
    return {key: ",".join(value) if isinstance(value, (list, tuple)) else value
            for key, value in flat.items()}


def write_round(study_dir: str, *, study: str, trial_id: str, record: dict[str, Any],
                objective: float | None, extra: dict[str, Any] | None = None) -> None:
    """Write one round's record: its rounds row and its OOD rows (replacing earlier files).

    Args:
        record: A ``netinv.pipeline`` round record (with its ``"ood"`` list).
        objective: The study's objective on the val split for this round.
        extra: More rounds-table columns (attempt, resumed_from_round, and the placement
            columns node_id, node_ip, cpus, gpus, which the OOD rows carry too).
    """
    r = int(record["round"])
    extra = extra or {}
    keys = {STUDY: study, TRIAL_ID: trial_id, ROUND: r}
    placement = {k: extra.get(k) for k in PLACEMENT_FIELDS}
    row = {**keys, OBJECTIVE: objective, **{k: record.get(k) for k in RECORD_FIELDS}, **extra}
    ood_rows = [{**keys, **ood, **placement} for ood in record["ood"]]
    # OOD rows first: a reader that sees a round's rounds row also finds its OOD rows
    write_rows(layout.round_uri(study_dir, "ood", trial_id, r), ood_rows, OOD_SCHEMA)
    write_rows(layout.round_uri(study_dir, "rounds", trial_id, r), [row], ROUNDS_SCHEMA)


def read_trial(study_dir: str, trial_id: str) -> dict[str, Any] | None:
    """The trial's current row as a dict, or None when not written yet."""
    data = storage.get_bytes(layout.trial_uri(study_dir, trial_id))
    if data is None:
        return None
    return pq.read_table(pa.BufferReader(data), schema=TRIALS_SCHEMA).to_pylist()[0]


def write_trial(study_dir: str, row: dict[str, Any]) -> None:
    """Write (replace) the trial's row; ``row`` needs at least study and trial_id."""
    unknown = set(row) - set(TRIALS_SCHEMA.names)
    assert not unknown, f"columns not in TRIALS_SCHEMA: {sorted(unknown)}"
    write_rows(layout.trial_uri(study_dir, row[TRIAL_ID]), [row], TRIALS_SCHEMA)


def config_row(config: Config | dict[str, Any]) -> dict[str, Any]:
    """Trial-row columns describing a config: config_json plus one column per flat key."""
    flat = config.to_flat() if isinstance(config, Config) else dict(config)
    return {"config_json": json.dumps(flat, sort_keys=True), **config_columns(flat)}


# ----------------------------------------------------------------------------- reading


def read_table(study_dir: str, table: str) -> pd.DataFrame:
    """One table of a study as a pandas DataFrame (empty, with its columns, when none yet).

    Args:
        study_dir: ``<storage>/<study>``, a local path or URI.
        table: ``"trials"``, ``"rounds"`` or ``"ood"``.
    """
    if table not in SCHEMAS:
        raise ValueError(f"`table` must be one of {', '.join(TABLES)}, got table={table!r}.")
    schema = SCHEMAS[table]
    fs, path = storage.filesystem(layout.results_dir(study_dir, table))
    if not storage.is_dir(layout.results_dir(study_dir, table)):
        return schema.empty_table().to_pandas()
    dataset = ds.dataset(path, schema=schema, format="parquet", filesystem=fs)
    frame = dataset.to_table().to_pandas()
    sort = [TRIAL_ID] + ([ROUND] if ROUND in frame.columns else [])
    return frame.sort_values(sort, kind="stable").reset_index(drop=True)
