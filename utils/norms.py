"""The normalizations: one `NormSpec` row each, the only table of their properties.

Names, aliases, labels, colours, markers, whether a normalization splits the channels into
groups, and which layer builds it are read from here by the models, the configs, the
tables and the figures. Kept free of TensorFlow so that reading results stays quick: a
row names its layer class, which `utils.models.make_norm` imports when it builds one.
"""

import dataclasses
from types import MappingProxyType

__all__ = [
    "NormSpec",
    "REGISTRY",
    "NORMALIZATIONS",
    "SHORT_NAMES",
    "LABELS",
    "GROUPED",
    "MIXTURES",
    "spec",
    "canonical_norm",
]


@dataclasses.dataclass(frozen=True)
class NormSpec:
    """One normalization.

    Args:
        name: the registry name, as configs store it ("group").
        short: the alias used in run names and on the command line ("gn").
        label: the short label of tables and legends ("GN").
        long_label: the label of figure titles ("Group Norm").
        color: its colour in every figure.
        marker: its marker in every figure (apart in print and for colour-blind readers).
        grouped: whether it splits the channels into groups (takes `groups`).
        layer: the class that builds it, "module:Class" (None: the identity).
        defaults: (keyword, value) pairs the layer always gets.
    """

    name: str
    short: str
    label: str
    long_label: str
    color: str
    marker: str
    grouped: bool = False
    layer: str | None = None
    defaults: tuple = ()


# The paper's four, then Batch Renormalization (Ioffe, 2017; the paper's other small-batch
# baseline), the GN+BN mixtures of Gunawan et al. (2021; utils.mixtures) and no
# normalization. Batch Renorm's and the mixtures' BN options live in utils.models.
_ROWS = (
    NormSpec(
        "batch", "bn", "BN", "Batch Norm", "#1f77b4", "o", layer="keras.layers:BatchNormalization"
    ),
    NormSpec(
        "layer", "ln", "LN", "Layer Norm", "#2ca02c", "^", layer="utils.layers:LayerNormalization"
    ),
    NormSpec(
        "instance",
        "in",
        "IN",
        "Instance Norm",
        "#9467bd",
        "D",
        layer="utils.layers:InstanceNormalization",
    ),
    NormSpec(
        "group",
        "gn",
        "GN",
        "Group Norm",
        "#d62728",
        "s",
        grouped=True,
        layer="utils.layers:GroupNormalization",
    ),
    NormSpec(
        "batch_renorm",
        "brn",
        "BRN",
        "Batch Renorm",
        "#17becf",
        "P",
        layer="keras.layers:BatchNormalization",
        defaults=(("renorm", True),),
    ),
    NormSpec(
        "gn_plus_parallel",
        "gnbn_parallel",
        "GN+BN parallel",
        "GN+BN mixture, parallel",
        "#8c564b",
        "<",
        grouped=True,
        layer="utils.mixtures:GNPlusParallel",
    ),
    NormSpec(
        "gn_plus_gn_first",
        "gnbn_gn_first",
        "GN+BN, GN first",
        "GN+BN mixture, GN first",
        "#e377c2",
        ">",
        grouped=True,
        layer="utils.mixtures:GNPlusGNFirst",
    ),
    NormSpec(
        "gn_plus_bn_first",
        "gnbn_bn_first",
        "GN+BN, BN first",
        "GN+BN mixture, BN first",
        "#bcbd22",
        "h",
        grouped=True,
        layer="utils.mixtures:GNPlusBNFirst",
    ),
    # A control for the mixtures: the parallel one with s fixed at 0.5 (lambda = 0).
    NormSpec(
        "gn_plus_parallel_fixed",
        "gnbn_parallel_fixed",
        "GN+BN parallel, s = 0.5",
        "GN+BN mixture, parallel, s fixed at 0.5",
        "#ff7f0e",
        "X",
        grouped=True,
        layer="utils.mixtures:GNPlusParallel",
        defaults=(("mixing_initializer", 0.0), ("learn_mixing_weight", False)),
    ),
    NormSpec("none", "none", "no norm", "No normalization", "#7f7f7f", "v"),
)

REGISTRY = MappingProxyType({row.name: row for row in _ROWS})
NORMALIZATIONS = tuple(REGISTRY)
SHORT_NAMES = MappingProxyType({row.name: row.short for row in _ROWS})
LABELS = MappingProxyType({row.name: row.label for row in _ROWS})
# The normalizations that split the channels into groups (a `groups` option).
GROUPED = tuple(row.name for row in _ROWS if row.grouped)
MIXTURES = tuple(row.name for row in _ROWS if row.name.startswith("gn_plus_"))
_ALIASES = {row.short: row.name for row in _ROWS}


def canonical_norm(name):
    """Returns the registry name ("batch", ...) for a name or short alias ("bn", ...).

    Args:
        name: a name from `NORMALIZATIONS` or a short alias, in any case.

    Raises:
        ValueError: for an unknown name; the message lists the valid names.
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in REGISTRY:
        valid = ", ".join(f"{n!r} ({SHORT_NAMES[n]!r})" for n in NORMALIZATIONS)
        raise ValueError(f"Unknown normalization {name!r}; valid names are {valid}.")
    return key


def spec(name):
    """The `NormSpec` of a name or short alias (see `canonical_norm`)."""
    return REGISTRY[canonical_norm(name)]
