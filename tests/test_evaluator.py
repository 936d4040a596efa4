import keras
import numpy as np
import pytest
import tensorflow as tf

from forgetbench.data.dataset import ShardDataset
from forgetbench.data.store import ShardStore
from forgetbench.eval.evaluator import Evaluator, task_classes

# Two shards of two classes each; the identity network outputs the features as logits.
HELDOUT = {
    "s0": ([[3.0, 1.0, 0.0, 0.0], [0.0, 2.0, 0.0, 5.0]], [0, 1]),
    "s1": ([[9.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 2.0], [0.0, 8.0, 1.0, 0.5]], [2, 3, 2]),
}


def store(folder):
    folder.mkdir()
    for name, (x, y) in HELDOUT.items():
        np.savez(folder / f"{name}.npz", array1=np.array(x, np.float32), array2=np.array(y))
    return ShardStore(folder)


def identity_net():
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, use_bias=False)])
    net.layers[0].set_weights([np.eye(4, dtype=np.float32)])
    return net


def cross_entropy(logits, label):
    logits = np.asarray(logits, np.float64)
    return np.log(np.exp(logits).sum()) - logits[label]


def test_task_incremental_masks_other_classes(tmp_path, keras_session):
    heldout = store(tmp_path / "held")
    net = identity_net()
    # Batches of 2 leave a padded last batch.
    plain = Evaluator(heldout, batch_size=2)(net)
    masked = Evaluator(heldout, batch_size=2, task_classes=[(0, 1), (2, 3)])(net)
    assert [r["accuracy"] for r in plain] == [0.5, pytest.approx(1 / 3)]
    assert [r["accuracy"] for r in masked] == [1.0, 1.0]
    x1, _ = HELDOUT["s1"]
    expected = np.mean(
        [cross_entropy(x1[0][2:], 0), cross_entropy(x1[1][2:], 1), cross_entropy(x1[2][2:], 0)]
    )
    assert masked[1]["loss"] == pytest.approx(expected, rel=1e-5)
    assert plain[1]["loss"] == pytest.approx(
        np.mean([cross_entropy(x, y) for x, y in zip(*HELDOUT["s1"], strict=True)]), rel=1e-5
    )
    assert masked[0]["loss"] == pytest.approx(
        np.mean([cross_entropy([3.0, 1.0], 0), cross_entropy([0.0, 2.0], 1)]), rel=1e-5
    )
    assert [r["n_eval"] for r in masked] == [2, 3]


def test_task_classes_from_the_dataset(tmp_path):
    heldout = store(tmp_path / "held")
    dataset = ShardDataset("d", train=heldout, heldout=heldout, num_classes=4)
    assert task_classes(dataset, "class_incremental") is None
    assert task_classes(dataset, "task_incremental") == [(0, 1), (2, 3)]
    with pytest.raises(ValueError, match=r"eval.scenario='multi_head'. Expected one of"):
        task_classes(dataset, "multi_head")


@pytest.mark.parametrize("batch_size", [2, 3, 4096])
def test_segment_sums_equal_per_sample_bincount(tmp_path, keras_session, batch_size):
    # The per-shard sums are taken inside the compiled function; they must be the very numbers
    # of per-sample values summed on the host in float64 (curves stay identical).
    heldout = store(tmp_path / "held")
    keras.utils.set_random_seed(1)
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(4)])
    x, y = heldout.load_all()
    logits = np.asarray(net(x.astype(np.float32)))
    losses = np.array(
        [
            float(
                keras.ops.sparse_categorical_crossentropy(y[i : i + 1], logits[i : i + 1], True)[0]
            )
            for i in range(len(y))
        ]
    )
    correct = (np.argmax(logits, axis=-1) == y).astype(np.float64)
    shard = heldout.shard_ids()
    counts = np.bincount(shard)
    records = Evaluator(heldout, batch_size=batch_size)(net)
    assert [r["n_eval"] for r in records] == list(counts)
    assert [r["accuracy"] for r in records] == list(np.bincount(shard, weights=correct) / counts)
    for r, expected in zip(records, np.bincount(shard, weights=losses) / counts, strict=True):
        assert r["loss"] == pytest.approx(expected, rel=1e-6)


def random_heldout(folder, sizes=(7, 9, 4), seed=0):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    for k, n in enumerate(sizes):
        np.savez(
            folder / f"s{k}.npz",
            array1=rng.normal(size=(n, 4)).astype(np.float32),
            array2=rng.integers(0, 4, n),
        )
    return ShardStore(folder)


@pytest.mark.parametrize("batch_size", [1, 3, 4096])  # 20 looped batches, 7 unrolled, one
@pytest.mark.parametrize("classes", [None, [(0, 1), (2, 3), (1, 3)]])
def test_xla_evaluation_equals_the_plain_graph(tmp_path, keras_session, batch_size, classes):
    heldout = random_heldout(tmp_path / "held")
    keras.utils.set_random_seed(2)
    net = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, "relu"), keras.layers.Dense(4)]
    )
    xla = Evaluator(heldout, batch_size=batch_size, task_classes=classes)(net)
    plain = Evaluator(heldout, batch_size=batch_size, task_classes=classes, jit_compile=False)(net)
    assert [r["accuracy"] for r in xla] == [r["accuracy"] for r in plain]
    assert [r["n_eval"] for r in xla] == [7, 9, 4]
    for a, b in zip(xla, plain, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


class DoubledInPython(keras.layers.Layer):
    """A layer XLA cannot compile (a Python function inside the graph)."""

    def call(self, x):
        doubled = tf.numpy_function(lambda a: 2 * a, [x], tf.float32)
        doubled.set_shape(x.shape)
        return doubled


def test_network_xla_cannot_compile_falls_back_to_the_plain_graph(tmp_path, keras_session, caplog):
    heldout = random_heldout(tmp_path / "held")
    net = keras.Sequential([keras.Input((4,)), DoubledInPython(), keras.layers.Dense(4)])
    evaluator = Evaluator(heldout)
    with caplog.at_level("WARNING"):
        first = evaluator(net)
    assert "XLA could not compile" in caplog.text
    assert evaluator(net) == first == Evaluator(heldout, jit_compile=False)(net)
