"""A run folder's summary and the tables beside it, which hold what grows with the shard count.

``summary.json`` keeps metrics, per-group values, pointers and sizes. The accuracy matrix goes
to ``matrix.parquet`` (rows ``phase, eval_shard, accuracy``), the per-shard sizes and
evaluation groups to ``shards.parquet``, the per-epoch training log to ``train_log.parquet`` and
the data fingerprint's shard digests and source files to ``data.parquet`` (``split, name,
value``);
the summary names each file with its shape. :func:`read_summary` puts them back, and reads run
folders written before the tables existed (everything inline) the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forgetbench.results.io import SUMMARY, read_json, to_jsonable, write_with

MATRIX = "matrix.parquet"
SHARDS = "shards.parquet"
TRAIN_LOG = "train_log.parquet"
DATA = "data.parquet"
FILE_ROWS = "file"  # rows of DATA giving each shard's source file, beside the split digests


def split_summary(summary: dict) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The compact summary and the tables to write beside it, from a full summary.

    Args:
        summary: A full summary (matrix, shard lists and train log inline).

    Returns:
        The summary with pointers in their place, and ``{file name: table}``.
    """
    compact, tables = dict(summary), {}
    matrix = compact.get("accuracy_matrix")
    if isinstance(matrix, list):
        R = np.array(matrix, dtype=float).reshape(len(matrix), -1)
        i, j = np.indices(R.shape)
        tables[MATRIX] = pd.DataFrame(
            {"phase": i.ravel(), "eval_shard": j.ravel(), "accuracy": R.ravel()}
        )
        compact["accuracy_matrix"] = {"file": MATRIX, "shape": list(R.shape)}
    log = compact.get("train_log")
    if isinstance(log, list):
        tables[TRAIN_LOG] = pd.DataFrame.from_records(log)
        compact["train_log"] = {"file": TRAIN_LOG, "rows": len(log)}
    shards = compact.get("shards")
    if isinstance(shards, dict) and "names" in shards:
        table = pd.DataFrame(
            {
                "shard": np.arange(len(shards["names"])),
                "name": shards["names"],
                "train_size": shards["train_sizes"],
                "heldout_size": shards["heldout_sizes"],
            }
        )
        for column in ("group", "group_name"):
            if column in shards:
                table[column] = shards[column]
        if "validation_sizes" in shards:  # datasets with a validation split
            table["validation_size"] = shards["validation_sizes"]
        tables[SHARDS] = table
        compact["shards"] = {
            "file": SHARDS,
            "count": len(table),
            "train_samples": int(table["train_size"].sum()),
            "heldout_samples": int(table["heldout_size"].sum()),
        }
    data = compact.get("data")
    if isinstance(data, dict) and isinstance(data.get("shards"), dict):
        rows = [
            (split, name, value)
            for split, digests in data["shards"].items()
            for name, value in digests.items()
        ]
        rows += [(FILE_ROWS, name, str(path)) for name, path in data.get("files", {}).items()]
        tables[DATA] = pd.DataFrame(rows, columns=["split", "name", "value"])
        compact["data"] = {"fingerprint": data.get("fingerprint"), "file": DATA, "rows": len(rows)}
    return compact, tables


def write_tables(out_dir: Path, tables: dict[str, pd.DataFrame]) -> None:
    """Writes each table as parquet, atomically."""
    for name, table in tables.items():
        write_with(out_dir / name, lambda p, t=table: t.to_parquet(p, index=False))


def join_summary(summary: dict, folder: str | Path) -> dict:
    """The full summary: the tables a compact summary points to, read back inline.

    Raises:
        OSError: when a table it points to is missing or unreadable.
    """
    folder, full = Path(folder), dict(summary)
    matrix = full.get("accuracy_matrix")
    if isinstance(matrix, dict):
        long = pd.read_parquet(folder / matrix["file"])
        R = np.full(matrix["shape"], np.nan)
        R[long["phase"].to_numpy(), long["eval_shard"].to_numpy()] = long["accuracy"].to_numpy()
        full["accuracy_matrix"] = to_jsonable(R)
    log = full.get("train_log")
    if isinstance(log, dict):
        records = pd.read_parquet(folder / log["file"]).to_dict("records")
        full["train_log"] = to_jsonable(records)
    shards = full.get("shards")
    if isinstance(shards, dict) and "file" in shards:
        table = pd.read_parquet(folder / shards["file"])
        full["shards"] = {
            "names": table["name"].tolist(),
            "train_sizes": table["train_size"].tolist(),
            "heldout_sizes": table["heldout_size"].tolist(),
            **{c: table[c].tolist() for c in ("group", "group_name") if c in table},
        }
        if "validation_size" in table:
            full["shards"]["validation_sizes"] = table["validation_size"].tolist()
    data = full.get("data")
    if isinstance(data, dict) and "file" in data:
        table = pd.read_parquet(folder / data["file"])
        shards: dict[str, dict] = {}
        files = {}
        for split, name, value in table.itertuples(index=False):
            if split == FILE_ROWS:
                files[name] = value
            else:
                shards.setdefault(split, {})[name] = value
        full["data"] = {"fingerprint": data["fingerprint"], "shards": shards, "files": files}
    return full


def read_summary(folder: str | Path) -> dict:
    """A run folder's full summary, from either layout (tables beside it, or all inline)."""
    return join_summary(read_json(Path(folder) / SUMMARY), folder)
