"""The CNN trains and evaluates on image-shaped digits under every strategy; ``model.init`` is
validated before any work and recorded in the summary."""

from pathlib import Path

import keras
import numpy as np
import pytest

from forgetbench.run import run

STRATEGIES = sorted(
    p.stem for p in (Path(__file__).parents[1] / "conf" / "strategy").glob("*.yaml")
)
DENSE_ONLY = {"pnn"}  # progressive networks build dense columns (see README)
IMAGES = [
    "data=digits_split",
    "data.classes_per_shard=5",
    "data.image_shape=true",
    "model=cnn",
    "model.filters=[8,8]",
    "model.dense_units=16",
    "train.batch_size=32",
    "optimizer=adam",
    "optimizer.learning_rate=0.01",
    "eval.every_samples=100000",
    "output.run_figure=false",
    "train.epochs=1",
    "train.verbose=0",
]


@pytest.fixture
def image_cfg(tmp_path, keras_session, compose_config):
    """Composes the image-shaped digits config (cache in ``tmp_path``) plus overrides."""
    return lambda *more: compose_config([*IMAGES, f"paths.data_cache={tmp_path / 'data'}", *more])


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s not in DENSE_ONLY])
def test_cnn_trains_and_evaluates_image_shards_under_every_strategy(image_cfg, tmp_path, strategy):
    summary = run(image_cfg(f"strategy={strategy}"), tmp_path / "r")
    assert summary["status"] == "completed"
    matrix = np.asarray(summary["accuracy_matrix"], dtype=float)
    assert matrix.shape == (2, 2) and np.all((matrix >= 0) & (matrix <= 1))
    assert matrix.max() > 0.35  # it learned (one shard's 5 classes; chance is 0.2 at best)
    net = keras.models.load_model(tmp_path / "r" / "model.keras")
    assert net.input_shape == (None, 8, 8) and net.output_shape == (None, 10)
    assert "Conv2D" in {type(layer).__name__ for layer in net.layers}


@pytest.mark.parametrize("strategy", sorted(DENSE_ONLY & set(STRATEGIES)))
def test_dense_only_strategies_refuse_the_cnn_clearly(image_cfg, tmp_path, strategy):
    with pytest.raises(ValueError, match=r"dense networks.*Conv2D.*model=mlp"):
        run(image_cfg(f"strategy={strategy}"), tmp_path / "r")


def test_init_is_recorded_in_the_summary_and_changes_the_initial_weights(tiny_cfg, tmp_path):
    runs = {
        init: run(tiny_cfg(f"model.init={init}", "train.epochs=0"), tmp_path / init)
        for init in ("keras", "torch")
    }
    assert runs["keras"]["config"]["model"]["init"] == "keras"
    assert runs["torch"]["config"]["model"]["init"] == "torch"
    nets = {init: keras.models.load_model(tmp_path / init / "model.keras") for init in runs}
    torch_bias = nets["torch"].get_layer("hidden_0").get_weights()[1]
    assert np.all(nets["keras"].get_layer("hidden_0").get_weights()[1] == 0)
    assert np.all(np.abs(torch_bias) <= 1 / np.sqrt(5)) and np.any(torch_bias != 0)


def test_an_unknown_init_is_refused_before_any_data_is_read(tiny_cfg, tmp_path):
    cfg = tiny_cfg("model.init=glorot")
    with pytest.raises(ValueError, match=r"model.init='glorot'. Expected one of \['keras', "):
        run(cfg, tmp_path / "r")
    assert not (tmp_path / "data").exists()


def test_the_digits_presets_take_the_cnn_in_place_of_their_mlp(compose_config):
    # The presets choose the 128-128 MLP as a model option, so model=cnn replaces it whole
    # (no MLP key such as `hidden` left over for the CNN's builder).
    for preset in ("split_digits", "split_digits_task", "split_digits_domain", "permuted_digits"):
        mlp = compose_config([f"experiment={preset}"]).model
        assert list(mlp.hidden) == [128, 128]
        cnn = compose_config([f"experiment={preset}", "model=cnn", "data.image_shape=true"]).model
        assert cnn._target_.endswith(".cnn") and "hidden" not in cnn
