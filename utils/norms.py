"""Names of the normalizations, shared by the models, the configs and the results tables.

Kept free of TensorFlow so that reading results stays quick.
"""

# The study's four are batch, layer, instance and group. "batch_renorm" is Batch
# Renormalization (Ioffe, 2017), the paper's other small-batch baseline; the "gn_plus_*"
# layers mix a GN- and a BN-normalized tensor (Gunawan et al., 2021; utils.mixtures).
MIXTURES = ("gn_plus_parallel", "gn_plus_gn_first", "gn_plus_bn_first")
NORMALIZATIONS = ("batch", "layer", "instance", "group", "batch_renorm", *MIXTURES, "none")
SHORT_NAMES = {
    "batch": "bn", "layer": "ln", "instance": "in", "group": "gn", "batch_renorm": "brn",
    "gn_plus_parallel": "gnbn_parallel", "gn_plus_gn_first": "gnbn_gn_first", "gn_plus_bn_first": "gnbn_bn_first",
    "none": "none",
}
# The normalizations that split the channels into groups (a `groups` option).
GROUPED = ("group", *MIXTURES)
_ALIASES = {short: name for name, short in SHORT_NAMES.items()}


def canonical_norm(name):
    """Returns the registry name ("batch", ...) for a name or short alias ("bn", ...).

    Args:
        name: a name from `NORMALIZATIONS` or a short alias, in any case.

    Raises:
        ValueError: for an unknown name; the message lists the valid names.
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in NORMALIZATIONS:
        valid = ", ".join(f"{n!r} ({SHORT_NAMES[n]!r})" for n in NORMALIZATIONS)
        raise ValueError(f"Unknown normalization {name!r}; valid names are {valid}.")
    return key
