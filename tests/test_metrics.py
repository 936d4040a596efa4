import numpy as np
import pandas as pd
import pytest

from forgetbench.eval import metrics
from forgetbench.eval.summary import summarise

# Hand-computed example: 3 phases, 3 shards.
R = np.array(
    [
        [0.9, 0.2, 0.1],
        [0.6, 0.8, 0.3],
        [0.5, 0.7, 0.9],
    ]
)
B = np.array([0.1, 0.15, 0.2])


def test_acc():
    assert metrics.average_accuracy(R) == pytest.approx((0.5 + 0.7 + 0.9) / 3)


def test_bwt():
    assert metrics.backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)


def test_fwt():
    assert metrics.forward_transfer(R, B) == pytest.approx(((0.2 - 0.15) + (0.3 - 0.2)) / 2)


def test_forgetting_uses_max_over_earlier_phases():
    R2 = np.array([[0.9, 0.1, 0.0], [0.95, 0.8, 0.0], [0.4, 0.85, 0.9]])
    # shard 0: max(0.9, 0.95) - 0.4 = 0.55; shard 1: max(0.1, 0.8) - 0.85 = -0.05
    assert metrics.forgetting(R2) == pytest.approx((0.55 - 0.05) / 2)


def test_single_phase_metrics():
    r = np.array([[0.7]])
    assert metrics.average_accuracy(r) == pytest.approx(0.7)
    assert np.isnan(metrics.backward_transfer(r))
    assert np.isnan(metrics.forward_transfer(r, np.array([0.5])))
    assert np.isnan(metrics.forgetting(r))


def test_never_forgotten_has_zero_forgetting():
    r = np.array([[0.9, 0.5], [0.95, 0.9]])
    assert metrics.forgetting(r) == pytest.approx(-0.05)
    assert metrics.backward_transfer(r) == pytest.approx(0.05)


def test_accuracy_matrix_read_at_boundaries():
    rows = []
    points = [0, 40, 100, 140, 200]
    acc = {0: [0.5, 0.8, 0.9, 0.6, 0.4], 1: [0.5, 0.4, 0.3, 0.7, 0.95]}
    for t, seen in enumerate(points):
        for shard in (0, 1):
            rows.append({"samples_seen": seen, "eval_shard": shard, "accuracy": acc[shard][t]})
    curves = pd.DataFrame(rows)
    r, b = metrics.accuracy_matrix(curves, np.array([100, 200]))
    np.testing.assert_allclose(r, [[0.9, 0.3], [0.4, 0.95]])
    np.testing.assert_allclose(b, [0.5, 0.5])
    # A mixed feed evaluated just past a boundary is read at the first point reaching it.
    r, _ = metrics.accuracy_matrix(curves, np.array([90, 200]))
    np.testing.assert_allclose(r[0], [0.9, 0.3])
    with pytest.raises(ValueError, match="Expected an evaluation at or after every phase"):
        metrics.accuracy_matrix(curves, np.array([100, 250]))


@pytest.mark.parametrize(
    ("acc", "start", "delta", "patience", "expected"),
    [
        ([0.2, 0.9, 0.9, 0.85, 0.7, 0.6, 0.5], 2, 0.1, 2, 4),  # 0.85 is within delta
        ([0.2, 0.9, 0.7, 0.95, 0.9, 0.7, 0.6], 1, 0.1, 1, 5),  # first dip recovers
        ([0.2, 0.9, 0.9, 0.88, 0.85, 0.9], 2, 0.1, 2, None),  # never forgotten
        ([0.2, 0.9, 0.9, 0.5], 2, 0.1, 2, 3),  # forgotten at the very end
        ([0.2, 0.9, 0.5, 0.5], 3, 0.1, 2, None),  # trained last: nothing after it
        ([0.2, 0.9, 0.95, 0.8, 0.84], 1, 0.1, 1, 3),  # peak so far includes later points
        # A drop of exactly delta is not below peak - delta (0.8 - 0.1 rounds above 0.7).
        ([0.0, 0.8, 0.7, 0.7, 0.7], 1, 0.1, 2, None),
        ([0.0, 0.6, 0.5, 0.5, 0.5], 1, 0.1, 2, None),
    ],
)
def test_forgetting_onset(acc, start, delta, patience, expected):
    assert metrics.forgetting_onset(np.array(acc), start, delta, patience) == expected


# Curves: 5 evaluation points x 2 shards; phase 0 ends at point 2, phase 1 at point 4.
SEEN = np.array([0, 50, 100, 150, 200])
CURVE = np.array([[0.5, 0.5], [0.8, 0.4], [0.9, 0.3], [0.6, 0.7], [0.7, 0.95]])


def test_min_and_worst_case_accuracy():
    min_acc = metrics.min_accuracy(CURVE, np.array([2, 4]))
    assert min_acc == pytest.approx(0.6)  # shard 0 after point 2: min(0.9, 0.6, 0.7)
    r = np.array([[0.9, 0.3], [0.7, 0.95]])
    assert metrics.worst_case_accuracy(r, min_acc) == pytest.approx(0.95 / 2 + 0.5 * 0.6)
    assert np.isnan(metrics.min_accuracy(CURVE[:, :1], np.array([2])))
    assert metrics.worst_case_accuracy(np.array([[0.8]]), float("nan")) == pytest.approx(0.8)


def test_accuracy_auc_trapezoid_normalised():
    mean = CURVE.mean(axis=1)  # 0.5, 0.6, 0.6, 0.65, 0.825
    area = 50 * ((0.5 + 0.6) + (0.6 + 0.6) + (0.6 + 0.65) + (0.65 + 0.825)) / 2
    assert metrics.accuracy_auc(SEEN, CURVE) == pytest.approx(area / 200)
    assert mean[0] == 0.5
    assert np.isnan(metrics.accuracy_auc(SEEN[:1], CURVE[:1]))


def test_forgetting_since_learned_is_minus_bwt():
    assert metrics.forgetting_since_learned(R) == pytest.approx(-metrics.backward_transfer(R))


def test_mixed_feeds_have_no_onsets():
    # Shard 0 drops after the sequential feed's first boundary; a mixed feed trains it until
    # the end, so there is no evaluation after its last training and no onset.
    seen = [0, 100, 200, 300, 400]
    acc = {0: [0.5, 0.9, 0.6, 0.6, 0.6], 1: [0.5, 0.6, 0.7, 0.8, 0.9]}
    curves = pd.DataFrame(
        [
            {"samples_seen": s, "step": i, "eval_shard": j, "accuracy": acc[j][i]}
            for i, s in enumerate(seen)
            for j in acc
        ]
    )
    sequential = summarise(curves, np.array([100, 400]), 0.1, 2)
    assert [o["samples_seen"] for o in sequential["onset"]] == [200, None]
    assert sequential["onset"][0]["samples_to_forget"] == 100
    mixed = summarise(curves, np.array([100, 400]), 0.1, 2, mixed=True)
    assert [o["samples_seen"] for o in mixed["onset"]] == [None, None]
    assert mixed["metrics"] == sequential["metrics"]  # R is read at the same points
