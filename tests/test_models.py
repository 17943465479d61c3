"""The normalization registry, the small CNN and ResNet-50."""

import numpy as np
import pytest

import keras
from utils.layers import GroupNormalization
from utils.layers import InstanceNormalization
from utils.layers import LayerNormalization
from utils.layers import WeightStandardizedConv2D
from utils.models import NORMALIZATIONS
from utils.models import canonical_norm
from utils.models import make_norm
from utils.models import resnet50
from utils.models import small_cnn


@pytest.mark.parametrize(
    "name, layer_class",
    [
        ("batch", keras.layers.BatchNormalization),
        ("bn", keras.layers.BatchNormalization),
        ("layer", LayerNormalization),
        ("LN", LayerNormalization),
        ("instance", InstanceNormalization),
        ("in", InstanceNormalization),
        ("group", GroupNormalization),
        ("gn", GroupNormalization),
        ("none", keras.layers.Identity),
    ],
)
def test_registry_names_and_aliases(name, layer_class):
    layer = make_norm(name)
    assert type(layer) is layer_class
    if name != "none":
        assert layer.epsilon == 1e-5


def test_registry_lists_valid_names_for_unknown_name():
    with pytest.raises(
        ValueError, match=r"Unknown normalization 'weight'.*'batch'.*'group'.*'none'"
    ):
        make_norm("weight")


def test_groups_only_for_group_norm():
    assert make_norm("group", groups=8).groups == 8
    with pytest.raises(ValueError, match=r"groups=8 applies only to group normalization"):
        make_norm("batch", groups=8)


def test_channels_per_group_only_for_group_norm():
    layer = make_norm("gn", channels_per_group=16)
    assert (
        type(layer) is GroupNormalization
        and layer.channels_per_group == 16
        and layer.epsilon == 1e-5
    )
    with pytest.raises(
        ValueError, match=r"channels_per_group=4 applies only to group normalization"
    ):
        make_norm("layer", channels_per_group=4)
    with pytest.raises(ValueError, match=r"Pass either groups or channels_per_group, not both"):
        make_norm("group", groups=8, channels_per_group=4)


def test_small_cnn_with_channels_per_group():
    model = small_cnn("group", num_classes=5, channels_per_group=16)
    # conv1 has 64 channels and conv2 256: 4 and 16 groups of 16 channels.
    assert model.get_layer("norm1").groups == 4
    assert model.get_layer("norm2").groups == 16


def test_registry_passes_layer_options():
    layer = make_norm("batch", synchronized=True, name="bn_sync")
    assert layer.synchronized and layer.name == "bn_sync"
    assert make_norm("bn").momentum == 0.9
    assert canonical_norm(" GN ") == "group"
    assert set(NORMALIZATIONS) == {
        "batch",
        "layer",
        "instance",
        "group",
        "batch_renorm",
        "gn_plus_parallel",
        "gn_plus_gn_first",
        "gn_plus_bn_first",
        "gn_plus_parallel_fixed",
        "none",
    }


def test_batch_renorm_uses_the_papers_clipping_and_one_pair_of_statistics():
    layer = make_norm("brn", name="renorm")
    assert isinstance(layer, keras.layers.BatchNormalization) and layer.renorm
    assert layer.renorm_clipping == {"rmin": pytest.approx(1 / 1.5), "rmax": 1.5, "dmax": 0.5}
    assert layer.momentum == layer.renorm_momentum == 0.9
    assert layer.epsilon == 1e-5
    assert not make_norm("batch").renorm


def test_group_norm_with_one_group_is_layer_norm_and_one_channel_per_group_is_instance_norm():
    # Why the group ablation's G = 1 and C/G = 1 cells are the study's LN and IN runs:
    # the same seed builds the same weights and the networks compute the same function.
    images = np.random.default_rng(1).integers(0, 256, size=(2, 64, 64, 3)).astype(np.float32)
    pairs = [
        (dict(norm="layer"), dict(norm="group", groups=1)),
        (dict(norm="instance"), dict(norm="group", channels_per_group=1)),
    ]
    for special, general in pairs:
        outputs = []
        for options in (special, general):
            keras.utils.set_random_seed(3)
            outputs.append(small_cnn(num_classes=7, **options)(images, training=True))
        np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-7)


def test_small_cnn_output_shapes():
    model = small_cnn("group", groups=32)
    shapes = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shapes["conv1"] == (29, 29, 64)
    assert shapes["pool1"] == (15, 15, 64)
    assert shapes["conv2"] == (15, 15, 256)
    assert shapes["pool2"] == (256,)
    assert shapes["dense1"] == (128,)
    assert shapes["probabilities"] == (200,)
    assert model.get_layer("conv2").kernel.shape[:2] == (1, 1)
    assert model.get_layer("norm1").groups == 32


def test_small_cnn_options():
    model = small_cnn("layer", num_classes=10, input_shape=(32, 32, 3), second_kernel_size=3)
    assert model.get_layer("conv2").kernel.shape[:2] == (3, 3)
    assert model.output.shape[-1] == 10
    assert isinstance(model.get_layer("norm2"), LayerNormalization)
    assert model.get_layer("dense1").activation is keras.activations.relu


def test_weight_decay_is_the_papers_coupled_rule():
    weight_decay = 1e-3
    model = small_cnn("group", groups=4, num_classes=5, weight_decay=weight_decay)
    # Every trainable weight (kernels, biases, gamma, beta) is decayed ...
    assert len(model.losses) == len(model.trainable_weights)
    # ... by a penalty whose gradient is weight_decay * w.
    squares = sum(float(np.sum(np.square(w.numpy()))) for w in model.trainable_weights)
    np.testing.assert_allclose(float(sum(model.losses)), weight_decay / 2 * squares, rtol=1e-4)
    assert not small_cnn("group", groups=4, num_classes=5).losses


@pytest.mark.slow
@pytest.mark.parametrize("norm", NORMALIZATIONS)
def test_one_fit_step_for_every_norm(norm):
    keras.utils.set_random_seed(0)
    model = small_cnn(norm, num_classes=4, weight_decay=1e-4)
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        "sparse_categorical_crossentropy",
        jit_compile=True,
    )
    images = np.random.default_rng(0).integers(0, 256, size=(4, 64, 64, 3)).astype(np.uint8)
    labels = np.array([0, 1, 2, 3])
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(images, labels, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))


@pytest.mark.slow
def test_resnet50_matches_the_standard_parameter_count():
    ours = resnet50("batch", num_classes=1000)
    reference = keras.applications.ResNet50(weights=None)
    # keras.applications adds biases to its convs; the paper's ResNet has none.
    conv_biases = sum(
        int(np.prod(layer.bias.shape))
        for layer in reference.layers
        if isinstance(layer, keras.layers.Conv2D)
    )
    reference_count = sum(int(np.prod(w.shape)) for w in reference.trainable_weights) - conv_biases
    assert sum(int(np.prod(w.shape)) for w in ours.trainable_weights) == reference_count


@pytest.mark.slow
def test_resnet50_last_norm_of_each_block_starts_at_zero_gamma():
    model = resnet50("group", num_classes=10, input_shape=(64, 64, 3), groups=32)
    last_norms = [layer for layer in model.layers if layer.name.endswith("_norm3")]
    assert len(last_norms) == 16
    assert all(np.all(layer.gamma.numpy() == 0) for layer in last_norms)
    assert np.all(model.get_layer("stem_norm").gamma.numpy() == 1)
    outputs = model(np.zeros((1, 64, 64, 3), np.float32))
    assert outputs.shape == (1, 10)


def test_small_cnn_accepts_a_layer_factory():
    def keras_group_norm(**kwargs):
        return keras.layers.GroupNormalization(groups=8, epsilon=1e-5, **kwargs)

    model = small_cnn(keras_group_norm, num_classes=3, weight_decay=1e-4)
    assert type(model.get_layer("norm1")) is keras.layers.GroupNormalization
    assert model.get_layer("norm2").groups == 8
    assert len(model.losses) == len(model.trainable_weights)


def conv_layers(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


@pytest.mark.parametrize("norm", ["group", "batch", "none"])
def test_small_cnn_weight_standardization_swaps_every_conv(norm):
    model = small_cnn(norm, num_classes=5, weight_standardization=True)
    convs = conv_layers(model)
    assert [layer.name for layer in convs] == ["conv1", "conv2"]
    assert all(type(layer) is WeightStandardizedConv2D for layer in convs)
    assert model.name.endswith("_ws")
    assert all(
        type(layer) is keras.layers.Conv2D for layer in conv_layers(small_cnn(norm, num_classes=5))
    )


def test_weight_standardization_must_be_a_boolean():
    message = r"weight_standardization must be True or False.*received weight_standardization='yes'"
    with pytest.raises(ValueError, match=message):
        small_cnn("group", weight_standardization="yes")


@pytest.mark.slow
def test_small_cnn_with_weight_standardization_trains_one_step():
    keras.utils.set_random_seed(0)
    model = small_cnn(
        "group",
        num_classes=4,
        input_shape=(32, 32, 3),
        weight_decay=1e-4,
        weight_standardization=True,
        groups=8,
    )
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        "sparse_categorical_crossentropy",
        jit_compile=True,
    )
    images = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3)).astype(np.uint8)
    labels = np.array([0, 1, 2, 3])
    kernel_before = model.get_layer("conv1").kernel.numpy().copy()
    history = model.fit(images, labels, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(kernel_before, model.get_layer("conv1").kernel.numpy())


@pytest.mark.slow
def test_resnet50_weight_standardization_swaps_every_conv():
    model = resnet50(
        "group", num_classes=10, input_shape=(64, 64, 3), weight_standardization=True, groups=32
    )
    convs = conv_layers(model)
    # The stem, three convs per block (16 blocks) and the four projection shortcuts.
    assert len(convs) == 1 + 3 * 16 + 4
    assert all(type(layer) is WeightStandardizedConv2D for layer in convs)
    assert model(np.zeros((1, 64, 64, 3), np.float32)).shape == (1, 10)


def test_run_configs_of_the_further_experiments_build_the_layers_they_name():
    from utils.config import RunConfig
    from utils.layers import WeightStandardizedConv2D
    from utils.training import build_model

    model = build_model(
        RunConfig(norm="group", channels_per_group=16, weight_standardization=True, classes=5)
    )
    assert (model.get_layer("norm1").groups, model.get_layer("norm2").groups) == (4, 16)
    assert all(
        isinstance(model.get_layer(name), WeightStandardizedConv2D) for name in ("conv1", "conv2")
    )
    assert not isinstance(
        build_model(RunConfig(norm="group", classes=5)).get_layer("conv1"), WeightStandardizedConv2D
    )
    renorm = build_model(RunConfig(norm="batch_renorm", classes=5)).get_layer("norm2")
    assert renorm.renorm and renorm.renorm_clipping["rmax"] == 1.5


def test_registry_builds_the_mixtures_and_the_noise_goes_after_each_norm():
    from utils.distortion import OutputNoise
    from utils.mixtures import GNPlusBNFirst

    layer = make_norm("gn_plus_bn_first", groups=8)
    assert isinstance(layer, GNPlusBNFirst) and layer.groups == 8 and layer.momentum == 0.9
    with pytest.raises(ValueError, match="channels_per_group=4 applies only to group"):
        make_norm("gn_plus_parallel", channels_per_group=4)
    model = small_cnn("group", num_classes=3, norm_noise=dict(mean=1e-3, stddev=1.001, groups=32))
    names = [layer.name for layer in model.layers]
    assert names.index("norm1_noise") == names.index("norm1") + 1 and "norm2_noise" in names
    assert isinstance(model.get_layer("norm2_noise"), OutputNoise)
    assert (
        model.get_layer("norm2_noise").stddev == 1.001
        and model.get_layer("norm2_noise").groups == 32
    )


def test_small_resnet_matches_the_standard_basic_block_parameter_count():
    # ResNet-18's basic blocks (He et al., Table 1) on 64x64 images with a 3x3 stem:
    # every conv without bias, one gamma and beta per normalized channel.
    from utils.models import small_resnet

    model = small_resnet("batch", num_classes=40, blocks=(2, 2, 2, 2))
    widths, convs, norms = (64, 128, 256, 512), 3 * 3 * 3 * 64, 64
    previous = 64
    for width in widths:
        convs += 9 * previous * width + 9 * width * width + 2 * 9 * width * width
        norms += 4 * width
        if width != previous:
            convs += previous * width
            norms += width
        previous = width
    expected = convs + 2 * norms + 512 * 40 + 40
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected
    assert model.name == "resnet18_bn"


def test_small_resnet_blocks_start_as_identities_and_fit_32_groups_everywhere():
    from utils.models import small_resnet

    model = small_resnet("group", num_classes=10, groups=32)
    assert model.name == "resnet10_gn"
    last_norms = [layer for layer in model.layers if layer.name.endswith("_norm2")]
    assert len(last_norms) == 4 and all(np.all(layer.gamma.numpy() == 0) for layer in last_norms)
    norms = [layer for layer in model.layers if isinstance(layer, GroupNormalization)]
    assert all(layer.gamma.shape[0] % 32 == 0 for layer in norms)
    shapes = [
        model.get_layer(f"stage{stage}_block1_out").output.shape[1:3] for stage in (1, 2, 3, 4)
    ]
    assert shapes == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert model(np.zeros((2, 64, 64, 3), np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"widths=\(64,\) and blocks=\(1, 1\)"):
        small_resnet("group", widths=(64,), blocks=(1, 1))


def test_resnet10_normalizes_exactly_the_channels_its_config_checks():
    from utils.config import MODEL_CHANNELS
    from utils.config import RunConfig
    from utils.models import RESNET10_WIDTHS
    from utils.models import resnet10
    from utils.training import build_model

    model = resnet10("group", num_classes=10, groups=32)
    norms = [layer for layer in model.layers if isinstance(layer, GroupNormalization)]
    assert {layer.gamma.shape[0] for layer in norms} == set(MODEL_CHANNELS["resnet10"])
    # Stem, two per block and one per projection (three stages widen).
    assert len(norms) == 1 + 2 * len(RESNET10_WIDTHS) + 3
    built = build_model(
        RunConfig(
            model="resnet10",
            norm="batch",
            classes=10,
            dataset="synthetic-tiny-imagenet",
            images_per_class=4,
            val_images_per_class=2,
        )
    )
    assert built.name == "resnet10_bn" and built.output_shape == (None, 10)
    assert len([layer for layer in built.layers if "_conv" in layer.name]) == 1 + 2 * len(
        RESNET10_WIDTHS
    )
