"""Progressive networks: frozen earlier columns, the lateral formula by hand, laterals that learn,
per-shard routing, the saved model, exact accumulation, determinism, divergence, options."""

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from omegaconf import open_dict

from forgetbench.run import build_trainer, run
from forgetbench.strategies.base import Phase, Plugin
from forgetbench.strategies.pnn import PNN
from forgetbench.strategies.pnn_columns import Column, build_columns, new_column
from forgetbench.train.engine import Engine
from forgetbench.train.networks import mlp
from logreg_steps import CLASSES, DIM, PAD, WEIGHTED, N, identity_feed, make_data

pytestmark = pytest.mark.usefixtures("keras_session")

PNN_RUN = ("strategy=pnn", "model.hidden=[8,6]", "train.epochs=2")


def weights_of(layers) -> list[np.ndarray]:
    return [w.copy() for layer in layers for w in layer.get_weights()]


class ColumnProbe(Plugin):
    """Records every column's weights at each phase's start (after the new column is made)
    and end."""

    def __init__(self) -> None:
        self.at_start, self.at_end, self.trainable = [], [], []
        self.pnn = None  # the run's PNN plugin (set by the test)

    def _snapshot(self, ctx):
        return [weights_of(c.all_layers) for c in self.pnn.columns]

    def before_phase(self, ctx, phase) -> None:
        self.at_start.append(self._snapshot(ctx))
        self.trainable.append({v.path for v in ctx.net.trainable_variables})

    def after_phase(self, ctx, phase) -> None:
        self.at_end.append(self._snapshot(ctx))


def probed_trainer(tiny_cfg, *overrides):
    cfg = tiny_cfg(*PNN_RUN, *overrides)
    with open_dict(cfg):
        cfg.strategy.plugins.probe = {"_target_": "test_pnn.ColumnProbe"}
    trainer, *_ = build_trainer(cfg)
    pnn, probe = trainer.strategy.plugins["pnn"], trainer.strategy.plugins["probe"]
    probe.pnn = pnn
    trainer.train()
    return trainer, pnn, probe


def test_frozen_columns_learning_laterals_and_class_incremental_evaluation(tiny_cfg):
    # One run of three columns (tracing a step per column is most of a run's time).
    trainer, pnn, probe = probed_trainer(tiny_cfg)
    check_earlier_columns_stay_bit_identical_and_receive_no_gradient(trainer, pnn, probe)
    check_lateral_weights_change_while_later_columns_train(pnn, probe)
    check_class_incremental_evaluates_the_newest_column_over_all_classes(trainer, pnn)


def check_earlier_columns_stay_bit_identical_and_receive_no_gradient(trainer, pnn, probe):
    assert len(pnn.columns) == 3
    for k in range(3):
        for j in range(k):  # column j while column k trains: frozen, bit-identical
            for before, after in zip(probe.at_end[j][j], probe.at_end[k][j], strict=True):
                np.testing.assert_array_equal(before, after)
        own = {v.path for layer in pnn.columns[k].all_layers for v in layer.weights}
        earlier = {v.path for c in pnn.columns[:k] for layer in c.all_layers for v in layer.weights}
        assert probe.trainable[k] == own  # the update's variables: the new column's only
        assert not probe.trainable[k] & earlier
    # Column 2 changed while it trained (it is the one being updated).
    assert any(
        np.any(a != b) for a, b in zip(probe.at_start[2][2], probe.at_end[2][2], strict=True)
    )
    # The optimizer is fresh for each column: its step count is the last phase's updates.
    updates = trainer.phases[2].feed.batches_per_epoch * 2
    assert int(trainer.engine.optimizer.iterations.numpy()) == updates
    # A gradient of the last column's loss reaches only its own variables.
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(trainer.net(x, training=True) ** 2)
    grads = tape.gradient(loss, trainer.net.trainable_variables)
    assert all(g is not None for g in grads)
    assert {v.path for v in trainer.net.trainable_variables} == probe.trainable[2]


def check_lateral_weights_change_while_later_columns_train(pnn, probe):
    for k in (1, 2):
        column = pnn.columns[k]
        assert sorted(column.laterals) == [1, 2]  # into the second hidden layer and the logits
        for alphas, v, u in column.laterals.values():
            assert len(alphas) == k  # one alpha per earlier column
            for layer in (*alphas, v, u):
                index = column.all_layers.index(layer)
                offset = sum(len(lay.get_weights()) for lay in column.all_layers[:index])
                span = slice(offset, offset + len(layer.get_weights()))
                start, end = probe.at_start[k][k][span], probe.at_end[k][k][span]
                changed = [np.any(a != b) for a, b in zip(start, end, strict=True)]
                assert all(changed), f"column {k}: lateral {layer.name} did not change"


def hand_forward(x, columns_weights, laterals_into, relu=lambda z: np.maximum(z, 0)):
    """The lateral formula of Rusu et al. (eq. 2) in numpy, column by column."""
    states, logits = [], []
    for k, (layers, adapters) in enumerate(columns_weights):
        h = [x]
        for i, (w, b) in enumerate(layers):
            z = h[i] @ w + b
            if k > 0 and i in laterals_into:
                alphas, (v, c), u = adapters[i]
                joined = np.concatenate([alphas[j] * states[j][i] for j in range(k)], axis=1)
                z = z + relu(joined @ v + c) @ u
            if i == len(layers) - 1:
                logits.append(z)
            else:
                h.append(relu(z))
        states.append(h)
    return logits


@pytest.mark.parametrize("input_laterals", [False, True])
def test_a_forward_pass_with_hand_set_weights_is_the_lateral_formula(input_laterals):
    rng = np.random.default_rng(3)
    keras.utils.set_random_seed(0)
    first = mlp((3,), 2, hidden=(4, 5))
    layers = [layer for layer in first.layers if isinstance(layer, keras.layers.Dense)]
    columns = [Column(layers, "relu", builtin_activation=True)]
    into = [0, 1, 2] if input_laterals else [1, 2]
    for k in (1, 2):
        columns.append(new_column(layers, "relu", k, [3, 4, 5], into, "keras", rng))
    net, everything = build_columns((3,), columns)
    hand = []
    for column in columns:
        own = []
        for layer in column.layers:
            w = rng.normal(size=layer.kernel.shape).astype(np.float32)
            b = rng.normal(size=layer.bias.shape).astype(np.float32)
            layer.set_weights([w, b])
            own.append((w, b))
        adapters = {}
        for i, (alphas, v, u) in column.laterals.items():
            values = [np.float32(rng.normal()) for _ in alphas]
            for alpha, value in zip(alphas, values, strict=True):
                alpha.set_weights([np.full((1, 1), value, np.float32)])
            vw = [rng.normal(size=t.shape).astype(np.float32) for t in v.get_weights()]
            uw = rng.normal(size=u.kernel.shape).astype(np.float32)
            v.set_weights(vw)
            u.set_weights([uw])
            adapters[i] = (values, tuple(vw), uw)
        hand.append((own, adapters))
    x = rng.normal(size=(7, 3)).astype(np.float32)
    expected = hand_forward(x, hand, into)
    outputs = everything(x)
    assert len(outputs) == 3
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net(x).numpy(), expected[-1], rtol=1e-5, atol=1e-5)
    # The laterals are used (Mammoth's bug: they never were): without them the output differs.
    no_laterals = hand_forward(x, hand, [])
    assert np.abs(no_laterals[2] - expected[2]).max() > 1e-3


def test_task_incremental_routes_each_shard_to_its_column_and_the_model_saves_every_column(
    tiny_cfg, tmp_path
):
    cfg = tiny_cfg(*PNN_RUN, "eval.scenario=task_incremental", "output.run_figure=false")
    summary = run(cfg, tmp_path / "r")
    info = summary["strategy_info"]["pnn"]
    assert info["columns"] == 3 and info["column_of_shard"] == {"0": 0, "1": 1, "2": 2}
    # Own parameters (5 inputs, hidden 8 and 6, 2 classes): 48 + 54 + 14 = 116. Laterals into
    # hidden 1 (from width 8: k alphas, V 8k x 8 + 8, U 8 x 6) and the logits (from width 6:
    # k alphas, V 6k x 6 + 6, U 6 x 2).
    lateral = [0] + [(k + 8 * k * 8 + 8 + 48) + (k + 6 * k * 6 + 6 + 12) for k in (1, 2)]
    assert info["lateral_parameters_per_column"] == lateral
    assert info["parameters_per_column"] == [116 + n for n in lateral]
    # Each finished shard is read by its frozen column: its accuracy never changes again.
    matrix = np.asarray(summary["accuracy_matrix"])
    for j in range(3):
        assert np.all(matrix[j:, j] == matrix[j, j])
    assert summary["metrics"]["bwt"] == 0.0
    saved = keras.models.load_model(tmp_path / "r" / "model.keras")
    assert len(saved.outputs) == 3
    curves = pd.read_parquet(tmp_path / "r" / "curves.parquet")
    final = curves[curves["samples_seen"] == curves["samples_seen"].max()]
    cfg_data = tiny_cfg(*PNN_RUN)
    trainer, dataset, *_ = build_trainer(cfg_data)
    held = dataset.heldout
    classes = [s.classes for s in dataset.train.shards]
    for j in range(3):
        x, y = np.asarray(held.features[j]), np.asarray(held.labels[j])
        logits = saved(x)[j].numpy()  # shard j's own column
        masked = np.full_like(logits, -np.inf)
        masked[:, list(classes[j])] = logits[:, list(classes[j])]
        accuracy = np.mean(np.argmax(masked, -1) == y)
        assert final[final["eval_shard"] == j]["accuracy"].item() == pytest.approx(accuracy)


def check_class_incremental_evaluates_the_newest_column_over_all_classes(trainer, pnn):
    assert trainer.ctx.evaluation_forward is None
    evaluator = trainer.evaluator
    n = evaluator.num_samples
    x = evaluator.x.reshape(-1, evaluator.x.shape[-1])[:n]
    y, shard = evaluator.y.ravel()[:n], evaluator.shard
    predicted = np.argmax(pnn.everything(x)[-1].numpy(), -1)
    for record in trainer.records[-3:]:
        j = record["eval_shard"]
        assert record["accuracy"] == pytest.approx(np.mean(predicted[shard == j] == y[shard == j]))


def column_engine(policy, k, seed=0):
    keras.utils.set_random_seed(seed)
    engine = Engine(
        mlp((DIM,), CLASSES, hidden=(4, 3)),
        lambda: keras.optimizers.Adam(learning_rate=0.05),
        policy,
        accumulation_steps=k,
    )
    plugin = PNN()
    plugin.setup(engine.ctx)
    plugin.before_phase(engine.ctx, Phase(0, 0, None))
    plugin.before_phase(engine.ctx, Phase(1, 1, None))  # column 1 trains from now on
    return engine


@pytest.mark.parametrize("policy", [WEIGHTED, PAD], ids=["weighted", "pad"])
def test_accumulated_column_update_equals_one_step_on_the_concatenation(policy):
    x, y = make_data()
    accumulated = column_engine(policy, k=5)  # 5 micro-batches (the last partial): one update
    accumulated.train_epoch(identity_feed(x, y, policy))
    whole = column_engine(policy, k=1)
    start = [v.numpy() for v in whole.net.trainable_variables]  # the new column's
    whole.train_epoch(identity_feed(x, y, policy, batch_size=N))
    assert int(accumulated.optimizer.iterations.numpy()) == 1
    for a, b in zip(accumulated.net.get_weights(), whole.net.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    after = [v.numpy() for v in whole.net.trainable_variables]
    assert all(np.any(a != b) for a, b in zip(after, start, strict=True))


@pytest.mark.parametrize(
    "remainder",
    ["pad", *(pytest.param(r, marks=pytest.mark.slow) for r in ("drop", "naive", "weighted"))],
)
def test_every_remainder_policy_with_accumulation_trains_every_column(tiny_cfg, remainder):
    trainer, pnn, probe = probed_trainer(
        tiny_cfg,
        f"remainder={remainder}",
        "train.accumulation_steps=2",
        "train.batch_size=7",
        "data.num_shards=2",
        "train.epochs=1",
    )
    assert trainer.diverged is None and len(pnn.columns) == 2
    for k in range(2):
        assert any(
            np.any(a != b) for a, b in zip(probe.at_start[k][k], probe.at_end[k][k], strict=True)
        )


def test_deterministic_per_seed(tiny_cfg):
    def curve(seed):
        cfg = tiny_cfg(
            *PNN_RUN, f"seed={seed}", "eval.scenario=task_incremental", "data.num_shards=2"
        )
        trainer, *_ = build_trainer(cfg)
        trainer.train()
        return [r["accuracy"] for r in trainer.records], trainer.strategy.summary()

    first, summary = curve(1)
    assert curve(1) == (first, summary)
    assert curve(2)[0] != first


def test_divergence_is_reported_like_other_strategies(tiny_cfg, tmp_path):
    summary = run(tiny_cfg(*PNN_RUN, "optimizer.learning_rate=1e30"), tmp_path / "r")
    assert summary["status"] == "diverged" and "accuracy_matrix" not in summary
    assert not (tmp_path / "r" / "model.keras").exists()


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("strategy.plugins.pnn.input_laterals=1", r"PNN input_laterals: expected true or false"),
        ("strategy.plugins.pnn.output_laterals=maybe", r"PNN output_laterals: expected true or"),
        ("strategy.plugins.pnn.init=xavier", r"model.init='xavier'. Expected one of"),
    ],
)
def test_bad_options_are_refused_before_any_data_is_read(tiny_cfg, tmp_path, override, match):
    with pytest.raises(Exception, match=match):
        run(tiny_cfg("strategy=pnn", override), tmp_path / "r")
    assert not (tmp_path / "data").exists()


def test_new_columns_follow_the_model_init(tiny_cfg):
    trainer, pnn, probe = probed_trainer(tiny_cfg, "model.init=torch", "train.epochs=0")
    assert pnn.init == "torch"
    for column in pnn.columns[1:]:
        for layer in column.layers:
            bound = 1 / np.sqrt(layer.kernel.shape[0])
            kernel, bias = layer.get_weights()
            assert np.abs(kernel).max() <= bound and np.any(bias != 0)


@pytest.mark.slow
def test_task_incremental_split_digits_pnn_near_the_top(tmp_path, preset_acc):
    # The literature's ordering (Rusu et al. 2016; van de Ven et al. 2022, task-incremental):
    # PNN, which cannot forget, at or above the regularisation methods, far above sequential.
    pnn = preset_acc("split_digits_task", "pnn")
    sequential = preset_acc("split_digits_task", "sequential")
    best_other = max(preset_acc("split_digits_task", s).mean() for s in ("lwf", "si"))
    assert pnn.mean() > sequential.mean() + 0.1 and np.all(pnn > sequential)
    assert pnn.mean() > best_other - 0.02
