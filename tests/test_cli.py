import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from forgetbench.report import report

BIN = Path(sys.executable).parent


def test_multirun_with_overrides_then_report(tmp_path, tiny_overrides):
    sweep = tmp_path / "sweep"
    cmd = [
        str(BIN / "forgetbench"),
        "-m",
        "strategy=sequential,cross_shard",
        "seed=3",
        *tiny_overrides,
        f"paths.data_cache={tmp_path / 'data'}",
        f"hydra.sweep.dir={sweep}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 2
    names = {json.loads(p.read_text())["strategy"] for p in summaries}
    assert names == {"sequential", "cross_shard"}
    assert all(json.loads(p.read_text())["seed"] == 3 for p in summaries)
    assert all("seed=3" in p.parent.name for p in summaries), "run folders not named by overrides"

    (sweep / "crashed" / ".hydra").mkdir(parents=True)  # a run that never finished
    table = report([sweep], tmp_path / "report")
    assert sorted(table["strategy"]) == ["cross_shard", "sequential"]
    runs = pd.read_parquet(tmp_path / "report" / "runs.parquet")
    assert len(runs) == 2 and runs["acc"].between(0, 1).all()
    curves = pd.read_parquet(tmp_path / "report" / "curves.parquet")
    assert set(curves["strategy"]) == {"sequential", "cross_shard"}
    outputs = ["summary.csv", "summary.md", "summary.tex", "bands.parquet", "matrices.parquet"]
    outputs += [
        f"{f}.{e}" for f in ("strategies", "metrics", "matrices", "onsets") for e in ("pdf", "png")
    ]
    for name in outputs:
        assert (tmp_path / "report" / name).stat().st_size > 0

    # Running the same sweep again skips the finished runs.
    stamps = [p.stat().st_mtime_ns for p in summaries]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in summaries] == stamps


def test_unknown_override_is_refused(tmp_path):
    done = subprocess.run(
        [str(BIN / "forgetbench"), "strategy=nope", f"hydra.run.dir={tmp_path / 'r'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "nope" in done.stderr
    assert not (tmp_path / "r" / "summary.json").exists()
