"""bench/training.py: ratios are paired by round (no training is run)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import training  # noqa: E402


def row(name, rates, **extra):
    return {"row": name, "round_samples_per_s": rates, **extra}


def test_ratios_are_medians_of_same_round_ratios():
    # Round 2 was disturbed for the plain baseline only: a ratio of bests or of medians would
    # mix rounds; the paired median keeps the undisturbed rounds' ratio.
    plain = row(training.PLAIN, [100.0, 40.0, 100.0])
    cross = row("cross_shard", [120.0, 110.0, 130.0])
    exact = row(training.EXACT.format(4), [108.0, 55.0, 117.0])
    evaluated = row(training.EVAL.format(500), [100.0, 100.0, 100.0], eval_share=0.25)
    training.add_ratios([plain, cross, exact, evaluated], every=500, k=4)
    assert cross["vs_plain_fit"] == pytest.approx(1.3)  # ratios 1.2, 2.75, 1.3
    assert exact["vs_cross_shard"] == pytest.approx(0.9)  # ratios 0.9, 0.5, 0.9
    assert evaluated["every_samples_for_10pct"] == pytest.approx(1250)
    assert "eval_share" in evaluated and "eval_share" not in cross


def test_pnn_step_cost_is_the_sequential_rate_over_the_pnn_rate_per_round():
    plain = row(training.PLAIN, [100.0, 100.0, 100.0])
    sequential = row(training.SEQUENTIAL_ENGINE, [200.0, 50.0, 200.0])
    two = row(training.PNN.format(2), [100.0, 40.0, 80.0])
    training.add_ratios([plain, sequential, two], every=500, k=4)
    assert two["step_cost_vs_sequential"] == pytest.approx(2.0)  # ratios 2.0, 1.25, 2.5
    assert "step_cost_vs_sequential" not in sequential
