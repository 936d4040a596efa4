from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forgetbench.report import (
    GROUP,
    TABLES,
    find_runs,
    latex,
    load_tables,
    markdown,
    mean_ci,
    report,
    runs_table,
    summary_table,
)
from forgetbench.results import aggregate
from forgetbench.results.tables import latex_escape


def test_mean_ci_is_student_t_interval():
    mean, half = mean_ci(pd.Series([0.5, 0.6, 0.7]))
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
    mean, half = mean_ci(pd.Series([0.4]))
    assert mean == pytest.approx(0.4) and np.isnan(half)


def test_summary_splits_by_varying_config_and_orders_strategies():
    rows = []
    for strategy in ("cross_shard", "sequential"):
        for k in (1, 4):
            for seed in range(3):
                acc = {"sequential": 0.5, "cross_shard": 0.9}[strategy] + 0.01 * k + 0.01 * seed
                rows.append(
                    {
                        "dataset": "d",
                        "strategy": strategy,
                        "remainder": "weighted",
                        "seed": seed,
                        "accumulation_steps": k,
                        "batch_size": 32,
                        "epochs": 1,
                        "learning_rate": 0.1,
                        "acc": acc,
                        "forgetting": 0.1,
                        "bwt": -0.1,
                        "fwt": float("nan"),
                    }
                )
    table = summary_table(pd.DataFrame(rows))
    assert table["strategy"].tolist() == ["sequential"] * 2 + ["cross_shard"] * 2
    assert "batch_size" not in table  # constant: not a grouping key
    row = table[(table.strategy == "sequential") & (table.accumulation_steps == 4)].iloc[0]
    assert row["seeds"] == 3
    assert row["acc"] == pytest.approx(0.5 + 0.04 + 0.01)
    text = markdown(table)
    assert text.splitlines()[0].startswith(
        "| dataset | strategy | remainder | accumulation_steps |"
    )
    assert "n/a" in text  # FWT is NaN for every run
    assert "0.550 ± " in text


def test_evaluation_scenario_splits_the_summary_when_it_varies():
    rows = [
        {
            "dataset": "d",
            "strategy": "sequential",
            "remainder": "weighted",
            "scenario": scenario,
            "seed": seed,
            "acc": acc + 0.01 * seed,
            "forgetting": 0.1,
            "bwt": 0.0,
            "fwt": 0.0,
        }
        for scenario, acc in (("class_incremental", 0.2), ("task_incremental", 0.9))
        for seed in range(2)
    ]
    table = summary_table(pd.DataFrame(rows))
    assert table["scenario"].tolist() == ["class_incremental", "task_incremental"]
    assert table["acc"].tolist() == pytest.approx([0.205, 0.905])


def test_latex_table_is_booktabs_with_mean_pm_ci():
    table = pd.DataFrame(
        {
            "dataset": ["toy", "toy"],
            "strategy": ["cross_shard", "joint"],
            "seeds": [3, 1],
            "acc": [0.9, 0.95],
            "acc_ci95": [0.0123, float("nan")],
            "bwt": [-0.25, float("nan")],
            "bwt_ci95": [0.05, float("nan")],
        }
    )
    assert latex(table) == (
        "% mean $\\pm$ 95% Student-t confidence interval over seeds; "
        "needs \\usepackage{booktabs}\n"
        "\\begin{tabular}{llrcc}\n"
        "\\toprule\n"
        "dataset & strategy & seeds & ACC & BWT \\\\\n"
        "\\midrule\n"
        "toy & cross\\_shard & 3 & $0.900 \\pm 0.012$ & $-0.250 \\pm 0.050$ \\\\\n"
        "toy & joint & 1 & $0.950$ & -- \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
    )
    assert latex_escape("a_b & 50% {x}") == "a\\_b \\& 50\\% \\{x\\}"


def test_runs_table_keeps_metric_keys_only_when_some_run_has_them(fake_sweep):
    complete, incomplete = find_runs([fake_sweep])
    assert [p.name for p in incomplete] == ["unfinished"]
    runs, _ = runs_table(complete)
    assert "min_acc" in runs and "wc_acc" not in runs
    by_run = runs.set_index(runs["path"].map(lambda p: Path(p).name))
    assert by_run.loc["sequential-1", "min_acc"] == pytest.approx(0.3)
    assert np.isnan(by_run.loc["joint-0", "min_acc"])  # older run without the key
    assert np.isnan(by_run.loc["sequential-9", "acc"])  # diverged: no metrics
    table = summary_table(runs[runs.status == "completed"])
    joint = table.set_index("strategy").loc["joint"]
    assert np.isnan(joint["min_acc"]) and joint["seeds"] == 2
    assert "n/a" in markdown(table) and " -- " in latex(table)


def _runs(*rows):
    return pd.DataFrame(
        [{"run_id": r, "dataset": "d", "strategy": s, "remainder": "w"} for r, s in rows]
    )


def test_curve_bands_average_seeds_on_the_union_of_their_points():
    curves = pd.DataFrame(
        {
            "run_id": ["a"] * 3 + ["b"] * 2,
            "eval_shard": 0,
            "samples_seen": [0, 50, 100, 0, 100],
            "accuracy": [0.2, 0.4, 0.6, 0.4, 0.8],
        }
    )
    bands = aggregate.curve_bands(curves, _runs(("a", "s"), ("b", "s")), GROUP)
    assert bands["samples_seen"].tolist() == [0, 50, 100]
    assert bands["accuracy"].tolist() == pytest.approx([0.3, 0.5, 0.7])  # b at 50: 0.6
    assert bands["low"].tolist() == pytest.approx([0.2, 0.4, 0.6])
    assert bands["high"].tolist() == pytest.approx([0.4, 0.6, 0.8])
    assert bands["seeds"].tolist() == [2, 2, 2]


def test_matrices_onsets_and_phases_tables():
    runs = _runs(("a", "sequential"), ("b", "sequential"))
    base = {"boundaries": [10, 20], "phases": [{"phase": 0, "train_shard": 0, "start_samples": 0,
                                                "end_samples": 10}]}  # fmt: skip
    summaries = [
        {**base, "run_id": "a", "seed": 0, "accuracy_matrix": [[0.8, 0.1], [0.4, 0.9]],
         "onset": [{"eval_shard": 0, "samples_seen": 15, "samples_to_forget": 5},
                   {"eval_shard": 1, "samples_seen": None, "samples_to_forget": None}]},
        {**base, "run_id": "b", "seed": 1, "accuracy_matrix": [[0.6, 0.3], [0.2, 0.7]],
         "onset": [{"eval_shard": 0, "samples_seen": None, "samples_to_forget": None},
                   {"eval_shard": 1, "samples_seen": None, "samples_to_forget": None}]},
    ]  # fmt: skip
    matrices = aggregate.matrices_table(summaries, runs, GROUP)
    assert matrices["accuracy"].tolist() == pytest.approx([0.7, 0.2, 0.3, 0.8])
    assert matrices[["phase", "eval_shard"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    onsets = aggregate.onsets_table(summaries, runs, GROUP)
    assert onsets["eval_shard"].tolist() == [0, 0]  # shard 1 ends the run: no onset to observe
    assert onsets["forgotten"].tolist() == [True, False]
    assert onsets["samples_seen"].iloc[0] == 15 and np.isnan(onsets["samples_seen"].iloc[1])
    summary = aggregate.onset_summary(onsets, GROUP)
    assert summary[["samples_seen", "forgotten", "seeds"]].values.tolist() == [[15, 1, 2]]
    phases = aggregate.phases_table(summaries, runs, GROUP)
    assert len(phases) == 1 and phases["train_shard"].tolist() == [0]


def test_report_writes_every_table_and_figure(fake_sweep, tmp_path, capsys):
    out = tmp_path / "report"
    table = report([fake_sweep], out, figure_copy=tmp_path / "copy" / "fig")
    printed = capsys.readouterr().out
    assert "ignoring incomplete run" in printed and "unfinished" in printed
    assert "diverged run, left out" in printed and "sequential-9" in printed
    assert table["strategy"].tolist() == ["sequential", "joint"]
    for name in ("runs.csv", "summary.csv", "summary.md", "summary.tex"):
        assert (out / name).stat().st_size > 0
    for name in ("strategies", "metrics", "matrices", "onsets"):
        assert (out / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "copy" / "fig.png").exists()
    tables = load_tables(out)
    assert set(tables) == set(TABLES)
    assert len(tables["runs"]) == 5 and len(tables["summary"]) == 2
    runs = tables["runs"]
    assert set(tables["curves"]["run_id"]) == set(runs["run_id"][runs.status == "completed"])
    assert tables["bands"]["seeds"].eq(2).all()
    assert len(tables["matrices"]) == 2 * 9
    assert tables["onsets"]["eval_shard"].max() == 1
    pd.testing.assert_frame_equal(tables["summary"], table)


def test_unreadable_and_repeated_runs_are_left_out_by_name(fake_sweep, tmp_path, capsys):
    import shutil

    (fake_sweep / "joint-1" / "summary.json").write_text('{"status": "comp')  # cut off
    shutil.copytree(fake_sweep / "sequential-0", fake_sweep / "copy-of-sequential-0")
    table = report([fake_sweep], tmp_path / "report")
    printed = capsys.readouterr().out
    assert "unreadable run, left out" in printed and "joint-1" in printed
    assert "repeat of run toy-sequential-weighted-seed0, left out" in printed
    assert dict(zip(table["strategy"], table["seeds"], strict=True)) == {
        "sequential": 2,
        "joint": 1,
    }


def test_runs_of_different_settings_are_never_averaged_together(
    fake_sweep, tmp_path, capsys, write_fake_run
):
    import json

    for seed in (2, 3):  # same strategy, other network: not two more seeds of the same thing
        folder = fake_sweep / f"joint-wide-{seed}"

        write_fake_run(folder, "joint", seed)
        data = json.loads((folder / "summary.json").read_text())
        data["config"]["model"] = {"hidden": [256]}
        (folder / "summary.json").write_text(json.dumps(data))
    table = report([fake_sweep], tmp_path / "report")
    printed = capsys.readouterr().out
    assert "differ in other config values (model.hidden: (absent) -> [256])" in printed
    joint = table[table["strategy"] == "joint"]
    assert "setting" in table and len(joint) == 2 and joint["seeds"].tolist() == [2, 2]


def test_a_partly_finished_sweep_says_how_many_runs_are_missing(fake_sweep, tmp_path, capsys):
    grid = "hydra:\n  overrides:\n    task: ['strategy=sequential,joint', 'seed=0,1,2']\n"
    (fake_sweep / "multirun.yaml").write_text(grid)
    report([fake_sweep], tmp_path / "report")
    printed = capsys.readouterr().out
    assert "5 of the sweep's 6 runs finished; 1 missing" in printed


def test_runs_of_different_data_are_never_averaged_together(
    fake_sweep, tmp_path, capsys, write_fake_run
):
    import json

    def fingerprint(folder, value):
        data = json.loads((folder / "summary.json").read_text())
        data["data"] = {"fingerprint": value}
        (folder / "summary.json").write_text(json.dumps(data))

    for seed in (0, 1):
        fingerprint(fake_sweep / f"joint-{seed}", "aaaa")
    write_fake_run(fake_sweep / "joint-2", "joint", 2)  # after a shard changed
    fingerprint(fake_sweep / "joint-2", "bbbb")
    table = report([fake_sweep], tmp_path / "report")
    printed = capsys.readouterr().out
    assert "were made on different data (aaaa (seeds [0, 1]), bbbb (seeds [2]))" in printed
    joint = table[table["strategy"] == "joint"]
    assert joint["data"].tolist() == ["aaaa", "bbbb"] and joint["seeds"].tolist() == [2, 1]
    # the sequential runs recorded no fingerprint (older runs): one group of their own
    assert table[table["strategy"] == "sequential"]["data"].tolist() == ["unrecorded"]


def test_runs_without_fingerprints_report_as_before(fake_sweep, tmp_path):
    table = report([fake_sweep], tmp_path / "report")
    assert "data" not in table
    runs = pd.read_parquet(tmp_path / "report" / "runs.parquet")
    assert set(runs["data"]) == {"unrecorded"}


def test_settings_whose_runs_all_diverged_are_noted(fake_sweep, tmp_path, capsys, write_fake_run):
    import json

    for seed in (0, 1):
        folder = fake_sweep / f"ewc-{seed}"
        write_fake_run(folder, "ewc", seed)
        data = json.loads((folder / "summary.json").read_text())
        data.update(status="diverged", diverged={"reason": "non-finite loss", "step": 7})
        data.pop("metrics")
        (folder / "summary.json").write_text(json.dumps(data))
    table = report([fake_sweep], tmp_path / "report")
    assert "ewc" not in set(table["strategy"])
    note = "dataset=toy, strategy=ewc, remainder=weighted: all 2 runs diverged"
    assert note + " (seed 0: non-finite loss at step 7)" in capsys.readouterr().out
    text = (tmp_path / "report" / "summary.md").read_text()
    assert "no run of these settings completed" in text and note in text
    assert "strategy=sequential" not in text  # one of its runs diverged, the others did not
