"""Model zoo: weight initialisation options (bounds and spreads per layer, fan-in by hand), the
unchanged Keras default, and the CNN on image-shaped features."""

import keras
import numpy as np
import pytest

from forgetbench.train.networks import INITS, cnn, logreg, mlp

pytestmark = pytest.mark.usefixtures("keras_session")


def kernels_and_biases(net):
    return {layer.name: layer.get_weights() for layer in net.layers if layer.get_weights()}


def test_keras_init_reproduces_the_plain_keras_layers_exactly():
    # The network as it was built before the option existed: Keras's own layer defaults.
    keras.utils.set_random_seed(7)
    inputs = keras.Input(shape=(6,))
    h = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(5, activation="relu", name="hidden_0")(h)
    h = keras.layers.Dense(4, activation="relu", name="hidden_1")(h)
    reference = keras.Model(inputs, keras.layers.Dense(3, name="logits")(h)).get_weights()
    keras.utils.set_random_seed(7)
    built = mlp((6,), 3, hidden=(5, 4), init="keras").get_weights()
    assert len(built) == len(reference) == 6
    for a, b in zip(built, reference, strict=True):
        np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(7)
    plain = keras.layers.Dense(3, name="logits")
    ins = keras.Input(shape=(6,))
    ref = keras.Model(ins, plain(keras.layers.Flatten()(ins))).get_weights()
    keras.utils.set_random_seed(7)
    for a, b in zip(logreg((6,), 3).get_weights(), ref, strict=True):
        np.testing.assert_array_equal(a, b)


def test_torch_init_is_uniform_within_one_over_root_fan_in_for_weights_and_biases():
    keras.utils.set_random_seed(0)
    net = mlp((20, 20), 300, hidden=(1000,), init="torch")  # flattened: 400 inputs
    layers = kernels_and_biases(net)
    for name, fan_in in (("hidden_0", 400), ("logits", 1000)):
        kernel, bias = layers[name]
        bound = 1 / np.sqrt(fan_in)
        for values in (kernel, bias):
            assert np.abs(values).max() <= bound
            assert np.abs(values).max() > 0.95 * bound  # fills the interval
        # uniform on [-b, b]: standard deviation b / sqrt(3)
        assert kernel.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)
        assert abs(kernel.mean()) < 0.01 * bound


def test_torch_init_of_a_convolution_uses_channels_times_kernel_area():
    keras.utils.set_random_seed(0)
    net = cnn((8, 8, 3), 10, filters=(40, 8), kernel_size=3, dense_units=0, init="torch")
    layers = kernels_and_biases(net)
    for name, fan_in in (("conv_0", 3 * 9), ("conv_1", 40 * 9), ("logits", 2 * 2 * 8)):
        kernel, bias = layers[name]
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
        assert np.abs(kernel).max() > 0.9 * bound
        assert np.any(bias != 0)


def test_he_init_has_spread_root_two_over_fan_in_and_zero_biases():
    keras.utils.set_random_seed(0)
    layers = kernels_and_biases(mlp((500,), 400, hidden=(800,), init="he"))
    for name, fan_in in (("hidden_0", 500), ("logits", 800)):
        kernel, bias = layers[name]
        std = np.sqrt(2 / fan_in)
        assert kernel.std() == pytest.approx(std, rel=0.02)
        assert np.abs(kernel).max() <= 2 * std / 0.87962566103423978 + 1e-6  # truncated
        np.testing.assert_array_equal(bias, 0.0)


def test_keras_init_has_glorot_bounds_and_zero_biases():
    keras.utils.set_random_seed(0)
    kernel, bias = kernels_and_biases(mlp((30,), 5, hidden=(20,)))["hidden_0"]
    assert np.abs(kernel).max() <= np.sqrt(6 / (30 + 20))
    np.testing.assert_array_equal(bias, 0.0)


@pytest.mark.parametrize("build", [logreg, mlp, cnn])
def test_an_unknown_init_is_refused_naming_the_key_and_the_choices(build):
    with pytest.raises(ValueError, match=r"model.init='xavier'.*\['keras', 'torch', 'he'\]"):
        build((8, 8), 3, init="xavier")
    assert INITS == ("keras", "torch", "he")


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 1)])
def test_cnn_takes_one_channel_images_and_returns_logits(shape):
    keras.utils.set_random_seed(0)
    net = cnn(shape, 10)
    x = np.random.default_rng(0).random((4, *shape)).astype(np.float32)
    assert net(x).shape == (4, 10)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds.count("Conv2D") == 2 and kinds.count("MaxPooling2D") == 2
    assert kinds[-1] == "Dense" and net.layers[-1].get_config()["activation"] == "linear"


def test_cnn_refuses_flat_features_saying_what_to_do():
    with pytest.raises(ValueError, match=r"model=cnn.*\(64,\).*data.image_shape=true"):
        cnn((64,), 10)
