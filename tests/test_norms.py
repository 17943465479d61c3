"""The normalization registry: one row per normalization, every other table derived from it."""

import keras
import numpy as np
import pytest

from utils import norms, paper, plots
from utils.models import make_norm


def test_each_property_tells_the_normalizations_apart():
    rows = list(norms.REGISTRY.values())
    for field in ("short", "label", "long_label", "color", "marker"):
        values = [getattr(row, field) for row in rows]
        assert len(set(values)) == len(values), field


@pytest.mark.parametrize("name", norms.NORMALIZATIONS)
def test_every_row_builds_its_layer_by_name_and_by_alias(name):
    row = norms.REGISTRY[name]
    x = np.random.default_rng(0).normal(size=(4, 3, 3, 64)).astype("float32")
    for key in (name, row.short, row.short.upper()):
        layer = make_norm(key)
        assert isinstance(layer, keras.layers.Layer)
        assert layer(x, training=True).shape == x.shape
    if row.layer is not None:
        assert type(make_norm(name)).__name__ == row.layer.split(":")[1]
    if row.grouped:
        assert make_norm(name, groups=4)(x, training=True).shape == x.shape
    else:
        with pytest.raises(ValueError, match="groups=4 applies only to"):
            make_norm(name, groups=4)


def test_the_other_tables_are_the_registrys():
    for name, row in norms.REGISTRY.items():
        assert paper.NORM_LABELS[name] == row.label
        assert (plots.NORM_COLORS[name], plots.NORM_MARKERS[name], plots.NORM_NAMES[name]) == (
            row.color,
            row.marker,
            row.long_label,
        )


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown normalization 'gm'.*'group' \('gn'\)"):
        norms.spec("gm")
