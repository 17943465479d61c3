"""Speed measurements; see benchmarks/README.md."""


def names_argument(parser, text, choices, what):
    """The comma-separated names in `text`, or a parser error naming the unknown ones."""
    names = text.split(",")
    unknown = [name for name in names if name not in choices]
    if unknown:
        parser.error(f"unknown {what} {unknown}; choose from {list(choices)}")
    return names


def integers_argument(text):
    """The comma-separated integers in `text`, e.g. "32,8,2"."""
    return [int(value) for value in text.split(",")]
