"""Names of the normalizations, shared by the models, the configs and the results tables.

Kept free of TensorFlow so that reading results stays quick.
"""

# "batch_renorm" is Batch Renormalization (Ioffe, 2017), the paper's other small-batch
# baseline; the study's four are batch, layer, instance and group.
NORMALIZATIONS = ("batch", "layer", "instance", "group", "batch_renorm", "none")
SHORT_NAMES = {
    "batch": "bn", "layer": "ln", "instance": "in", "group": "gn", "batch_renorm": "brn", "none": "none",
}
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
