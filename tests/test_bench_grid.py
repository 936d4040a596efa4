"""bench/grid.py: its grid is the Makefile's demo grid; job comparison (no sweep is run)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import grid  # noqa: E402


def test_grid_is_the_makefile_demo_grid():
    lines = (ROOT / "Makefile").read_text().splitlines()
    demo = lines[lines.index("demo: install") + 1]
    assert "forgetbench -m" in demo
    assert [w for w in demo.split() if "=" in w] == grid.DEMO


def test_differences_name_missing_and_changed_jobs():
    a = {"j1": {"metrics": {"acc": 0.5}, "accuracy_matrix": [[1]]}, "j2": {"metrics": {}}}
    b = {"j1": {"metrics": {"acc": 0.5}, "accuracy_matrix": [[0]]}, "j3": {"metrics": {}}}
    assert grid.differences(a, a) == []
    assert grid.differences(a, b) == [
        "j2: only in one sweep",
        "j3: only in one sweep",
        "j1: accuracy_matrix differs",
    ]
