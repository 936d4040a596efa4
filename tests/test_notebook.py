import os
from pathlib import Path

import pytest

import forgetbench
from forgetbench.report import report

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"
FIGURES = ["strategies", "strategies_single", "metrics", "matrices", "onsets"]


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_rebuilds_every_figure_from_the_tables(fake_sweep, tmp_path, monkeypatch):
    out = tmp_path / "report"
    report([fake_sweep], out)
    monkeypatch.setenv("FORGETBENCH_REPORT", str(out))
    # The kernel imports the forgetbench under test, wherever it is imported from here.
    package_root = str(Path(forgetbench.__file__).resolve().parents[1])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])
    )
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == len(FIGURES)
    saved = sorted(p.name for p in (out / "notebook").iterdir())
    assert saved == sorted(f"{name}.{ext}" for name in FIGURES for ext in ("pdf", "png"))
