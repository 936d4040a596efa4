"""The run folder's compact summary with tables beside it; both layouts read back alike."""

import json
import shutil

import pandas as pd

from forgetbench.report import load_tables, report
from forgetbench.results.io import write_json
from forgetbench.results.run_files import read_summary, split_summary, write_tables


def to_new_layout(sweep):
    """Rewrites every finished run of ``sweep`` with its tables beside a compact summary."""
    for path in sweep.rglob("summary.json"):
        full = json.loads(path.read_text())
        compact, tables = split_summary(full)
        write_tables(path.parent, tables)
        write_json(path, compact)
        assert read_summary(path.parent) == full  # the same summary, put back together


def test_report_reads_the_old_and_the_new_layout_alike(fake_sweep, tmp_path):
    new = tmp_path / "new"
    shutil.copytree(fake_sweep, new)
    to_new_layout(new)
    compact = json.loads((new / "sequential-0" / "summary.json").read_text())
    assert compact["accuracy_matrix"] == {"file": "matrix.parquet", "shape": [3, 3]}
    matrix = pd.read_parquet(new / "sequential-0" / "matrix.parquet")
    assert list(matrix.columns) == ["phase", "eval_shard", "accuracy"] and len(matrix) == 9
    report([fake_sweep], tmp_path / "old_report")
    report([new], tmp_path / "new_report")
    old_tables, new_tables = (
        load_tables(tmp_path / "old_report"),
        load_tables(tmp_path / "new_report"),
    )
    for name in ("summary", "matrices", "bands", "onsets", "phases"):
        pd.testing.assert_frame_equal(old_tables[name], new_tables[name])


def test_a_missing_table_makes_the_run_unreadable_not_wrong(fake_sweep, tmp_path, capsys):
    new = tmp_path / "new"
    shutil.copytree(fake_sweep, new)
    to_new_layout(new)
    (new / "joint-1" / "matrix.parquet").unlink()
    report([new], tmp_path / "report")
    assert "unreadable run, left out" in capsys.readouterr().out
    runs = load_tables(tmp_path / "report")["runs"]
    assert "joint-1" not in " ".join(runs["path"])
