"""Tables and findings for the paper's further questions, from the results folders.

Three experiments (`python -m utils.experiments --experiment beyond_the_paper`):

* "group_ablation", the paper's Table 3 at batch 32: GN with a fixed number of groups G,
  and with a fixed number of channels per group C/G. G = 1 is Layer Norm and C/G = 1 is
  Instance Norm, so those cells are the LN and IN runs.
* "batch_renorm": Batch Renormalization (Ioffe, 2017) beside BN and GN at batch 32, 8, 4
  and 2 (the paper compares them at 4 images per GPU).
* "weight_standardization": GN and BN with and without Weight Standardization (Qiao et
  al., 2019) at batch 32, 8 and 2.

As in `utils.results`, every number is the mean over seeds of a run's median validation
error of its last 5 epochs, with the standard deviation over seeds and n; differences
are paired by seed; missing, partial and diverged runs are labelled, never dropped.
"""

from __future__ import annotations

import math

import pandas as pd

from utils import paper
from utils.experiments.beyond_the_paper.group_ablation import SIZES as GROUP_ABLATION_SIZES
from utils.results import Cell
from utils.results import Difference
from utils.results import OURS_NOTE
from utils.results import PAPER_NOTE
from utils.results import SPREAD_NOTE
from utils.results import as_runs
from utils.results import by_batch_table
from utils.results import cell_statuses
from utils.results import data_context
from utils.results import format_points
from utils.results import paired_difference
from utils.results import run_cell
from utils.results import seed_counts
from utils.results import seeds_text
from utils.experiments.beyond_the_paper import batch_renorm, group_ablation, weight_standardization

GROUP_ABLATION = group_ablation.GROUP_ABLATION
BATCH_RENORM = batch_renorm.BATCH_RENORM
WEIGHT_STANDARDIZATION = weight_standardization.WEIGHT_STANDARDIZATION
# The small CNN's normalized layers have 64 and 256 channels.
_CHANNELS = (64, 256)
# The paper's GN default (G = 32) and its best channels-per-group setting (C/G = 16).
_REFERENCE_SIZE = {"groups": 32, "channels_per_group": 16}
_SPECIAL_CASE = {"groups": "layer", "channels_per_group": "instance"}
_SETTING_LABELS = {"groups": "G", "channels_per_group": "C/G"}
_PAPER_TABLE3 = {
    "groups": paper.TABLE3_GROUPS,
    "channels_per_group": paper.TABLE3_CHANNELS_PER_GROUP,
}
WS_LABELS = {
    ("batch", False): "BN",
    ("batch", True): "BN+WS",
    ("group", False): "GN",
    ("group", True): "GN+WS",
}


def group_ablation_cell(
    runs: pd.DataFrame, setting: str, size: int, *, experiment=GROUP_ABLATION, batch_size=32
) -> Cell:
    """The `run_cell` of one Table 3 cell: GN with `setting` ("groups" or
    "channels_per_group") equal to `size`; size 1 is the LN (G) or IN (C/G) runs."""
    if setting not in _SETTING_LABELS:
        raise ValueError(f"setting={setting!r} must be 'groups' or 'channels_per_group'.")
    if size == 1:
        return run_cell(
            runs, experiment=experiment, norm=_SPECIAL_CASE[setting], batch_size=batch_size
        )
    return run_cell(
        runs, experiment=experiment, norm="group", batch_size=batch_size, **{setting: size}
    )


def _groups_per_layer(setting: str, size: int) -> str:
    if setting == "groups":
        return ", ".join(str(size) for _ in _CHANNELS)
    return ", ".join(str(channels // size) for channels in _CHANNELS)


def table3(source="results", *, experiment=GROUP_ABLATION, batch_size=32) -> pd.DataFrame:
    """Table 3 side by side: GN by number of groups and by channels per group.

    Args:
        source: a results folder or a frame from `load_runs`.
        experiment: the experiment whose runs fill the table.
        batch_size: our batch size (the paper's is 32 images/GPU).

    Returns:
        One row per size (64, 32, ..., 1) with, for each half of the table ("G" and
        "C/G"): our mean val error and its sd, the paired difference to the paper's
        reference cell (G = 32, C/G = 16) and its sd, the paper's error, and for C/G the
        groups it gives the two normalized layers (64 and 256 channels); then "n" and
        "status". Row 1 is LN (G) and IN (C/G).
    """
    runs = as_runs(source)
    rows = []
    references = {
        setting: group_ablation_cell(
            runs, setting, size, experiment=experiment, batch_size=batch_size
        )
        for setting, size in _REFERENCE_SIZE.items()
    }
    for size in GROUP_ABLATION_SIZES:
        row = {"size": size}
        cells = {}
        for setting, label in _SETTING_LABELS.items():
            cell = group_ablation_cell(
                runs, setting, size, experiment=experiment, batch_size=batch_size
            )
            name = f"{label} = {size}" + {"groups": " (LN)", "channels_per_group": " (IN)"}[
                setting
            ] * (size == 1)
            cells[name] = cell
            difference = paired_difference(cell, references[setting])
            row.update(
                {
                    f"{label}: ours": cell.value,
                    f"{label}: ours sd": cell.sd,
                    f"{label}: minus {label} = {_REFERENCE_SIZE[setting]}": difference.mean,
                    f"{label}: minus {label} = {_REFERENCE_SIZE[setting]} sd": difference.sd,
                    f"{label}: paper": _PAPER_TABLE3[setting][size],
                }
            )
            if setting == "channels_per_group":
                row["C/G: groups per layer"] = _groups_per_layer(setting, size)
        row["n"] = seed_counts(cells)
        row["status"] = cell_statuses(cells)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs["caption"] = (
        f"Table 3 analogue: GN validation error (%) at batch {batch_size} by number of groups G and by "
        f"channels per group C/G ({data_context(runs)}); G = 1 is LN and C/G = 1 is IN (the same runs). The "
        "small CNN normalizes 64 and then 256 channels, so G = 64 is IN in the first layer, and a C/G cell has "
        "4 times as many groups in the second layer as in the first. "
        f"{OURS_NOTE}; {SPREAD_NOTE}. {PAPER_NOTE}, 32 images/GPU."
    )
    return frame


# The batch sizes of the two grids (utils.config), as the tables and findings show them.
BATCH_RENORM_SIZES = batch_renorm.BATCH_SIZES
WEIGHT_STANDARDIZATION_SIZES = weight_standardization.BATCH_SIZES


def batch_renorm_table(
    source="results", *, experiment=BATCH_RENORM, batch_sizes=BATCH_RENORM_SIZES
) -> pd.DataFrame:
    """Batch Renorm beside BN and GN by batch size, with the paper's numbers at 4 images/GPU.

    Returns:
        One row per batch size with columns "BN", "BRN", "GN" (mean val error and
        "... sd"), "BRN minus BN" and "GN minus BRN" (paired by seed) with their sd,
        "n", "paper BN", "paper BRN", "paper GN" (at 4 only) and "status".
    """
    runs = as_runs(source)

    def cells(batch_size):
        return {
            paper.NORM_LABELS[norm]: run_cell(
                runs, experiment=experiment, norm=norm, batch_size=batch_size
            )
            for norm in ("batch", "batch_renorm", "group")
        }

    def published(batch_size):
        return {
            f"paper {paper.NORM_LABELS[norm]}": paper.BATCH_RENORM_AT_4[norm]
            if batch_size == 4
            else math.nan
            for norm in ("batch", "batch_renorm", "group")
        }

    return by_batch_table(
        cells,
        batch_sizes,
        [("BRN", "BN"), ("GN", "BRN")],
        published,
        "Batch Renorm (r in [1/1.5, 1.5], d in [-0.5, 0.5] from the first step) beside BN and GN: validation "
        f"error (%) by batch size ({data_context(runs)}). {OURS_NOTE}; {SPREAD_NOTE}. {PAPER_NOTE}, 4 images/GPU only.",
    )


def weight_standardization_table(
    source="results", *, experiment=WEIGHT_STANDARDIZATION, batch_sizes=WEIGHT_STANDARDIZATION_SIZES
) -> pd.DataFrame:
    """BN and GN with and without Weight Standardization, by batch size.

    Returns:
        One row per batch size with columns "BN", "BN+WS", "GN", "GN+WS" (mean val error
        and "... sd"), "BN+WS minus BN", "GN+WS minus GN" and "GN+WS minus BN" (paired by
        seed, at the same batch size) with their sd, "n", the published ResNet-50
        numbers at batch 32 ("paper BN", "paper GN", "Qiao et al. GN+WS") and "status".
    """
    runs = as_runs(source)

    def cells(batch_size):
        return {
            label: run_cell(
                runs,
                experiment=experiment,
                norm=norm,
                batch_size=batch_size,
                weight_standardization=standardized,
            )
            for (norm, standardized), label in WS_LABELS.items()
        }

    def published(batch_size):
        at_32 = batch_size == 32
        return {
            "paper BN": paper.WEIGHT_STANDARDIZATION["batch"] if at_32 else math.nan,
            "paper GN": paper.WEIGHT_STANDARDIZATION["group"] if at_32 else math.nan,
            "Qiao et al. GN+WS": paper.WEIGHT_STANDARDIZATION["group+ws"] if at_32 else math.nan,
        }

    return by_batch_table(
        cells,
        batch_sizes,
        [("BN+WS", "BN"), ("GN+WS", "GN"), ("GN+WS", "BN")],
        published,
        f"Weight Standardization: validation error (%) by batch size ({data_context(runs)}). {OURS_NOTE}; {SPREAD_NOTE}. "
        f"{PAPER_NOTE}, 32 images/GPU; GN+WS: {paper.WS_CITATION}, ResNet-50 on ImageNet.",
    )


def _direction(difference: Difference, lower: str) -> str:
    """ "lower in 3 of 3 seeds" for a paired difference (first minus second)."""
    count, total = difference.negative, difference.n
    if not total:
        return "no seed has both runs yet"
    return f"{lower} in {seeds_text(count, total)}"


def conclusions(source="results") -> list[str]:
    """The findings of the three experiments as sentences, computed from the numbers.

    Each difference is paired by seed and says in how many seeds its direction holds;
    a number that cannot be computed reads "n/a" and the table's status says why.
    """
    runs = as_runs(source)
    lines = []
    for setting, label in _SETTING_LABELS.items():
        reference = _REFERENCE_SIZE[setting]
        cells = {size: group_ablation_cell(runs, setting, size) for size in GROUP_ABLATION_SIZES}
        proper = {size: cell.value for size, cell in cells.items() if size > 1 and cell.n}
        special = paired_difference(cells[1], cells[reference])
        published = _PAPER_TABLE3[setting]
        name = paper.NORM_LABELS[_SPECIAL_CASE[setting]]
        sentence = f"{label} = 1 ({name}) minus {label} = {reference}: {format_points(special.mean, special.sd)} points"
        sentence += f" ({_direction(special, name + ' lower')}; paper "
        sentence += f"{format_points(published[1] - published[reference])})."
        if proper:
            best = min(proper, key=proper.get)
            spread = max(proper.values()) - min(proper.values())
            sentence = (
                f"GN by {label}: the mean val error over {label} in "
                f"{{{', '.join(str(size) for size in sorted(proper, reverse=True))}}} spans {spread:.1f} points, "
                f"lowest at {label} = {best} ({proper[best]:.1f}); paper: "
                f"{max(published[s] for s in proper) - min(published[s] for s in proper):.1f} points. "
                + sentence
            )
        lines.append(sentence)
    for batch_size in BATCH_RENORM_SIZES:
        brn, bn, gn = (
            run_cell(runs, experiment=BATCH_RENORM, norm=norm, batch_size=batch_size)
            for norm in ("batch_renorm", "batch", "group")
        )
        renorm_gain, gn_gap = paired_difference(brn, bn), paired_difference(gn, brn)
        sentence = (
            f"Batch {batch_size}: BRN minus BN {format_points(renorm_gain.mean, renorm_gain.sd)} points "
            f"({_direction(renorm_gain, 'BRN lower')}), GN minus BRN {format_points(gn_gap.mean, gn_gap.sd)} "
            f"({_direction(gn_gap, 'GN lower')})"
        )
        if batch_size == 4:
            published = paper.BATCH_RENORM_AT_4
            sentence += (
                f"; paper at 4: BRN minus BN {format_points(published['batch_renorm'] - published['batch'])}, "
                f"GN minus BRN {format_points(published['group'] - published['batch_renorm'])}"
            )
        lines.append(sentence + ".")
    large, small = max(BATCH_RENORM_SIZES), min(BATCH_RENORM_SIZES)
    rises = {
        label: paired_difference(
            run_cell(runs, experiment=BATCH_RENORM, norm=norm, batch_size=small),
            run_cell(runs, experiment=BATCH_RENORM, norm=norm, batch_size=large),
        )
        for norm, label in (("batch", "BN"), ("batch_renorm", "BRN"))
    }
    if not any(math.isnan(rise.mean) for rise in rises.values()) and rises["BN"].mean > 0:
        kept = 1 - rises["BRN"].mean / rises["BN"].mean
        lines.append(
            f"From batch {large} to {small}: BN's val error rises {format_points(rises['BN'].mean, rises['BN'].sd)} "
            f"points, BRN's {format_points(rises['BRN'].mean, rises['BRN'].sd)}: Batch Renorm avoids "
            f"{100 * kept:.0f}% of BN's rise."
        )
    large_bn = run_cell(
        runs,
        experiment=WEIGHT_STANDARDIZATION,
        norm="batch",
        batch_size=32,
        weight_standardization=False,
    )
    for batch_size in WEIGHT_STANDARDIZATION_SIZES:
        cells = {
            label: run_cell(
                runs,
                experiment=WEIGHT_STANDARDIZATION,
                norm=norm,
                batch_size=batch_size,
                weight_standardization=standardized,
            )
            for (norm, standardized), label in WS_LABELS.items()
        }
        gn_gain = paired_difference(cells["GN+WS"], cells["GN"])
        bn_gain = paired_difference(cells["BN+WS"], cells["BN"])
        to_bn = paired_difference(cells["GN+WS"], large_bn)
        lines.append(
            f"Batch {batch_size}: WS changes GN by {format_points(gn_gain.mean, gn_gain.sd)} points "
            f"({_direction(gn_gain, 'lower with WS')}) and BN by {format_points(bn_gain.mean, bn_gain.sd)} "
            f"({_direction(bn_gain, 'lower with WS')}); GN+WS at batch {batch_size} minus BN at batch 32: "
            f"{format_points(to_bn.mean, to_bn.sd)} ({_direction(to_bn, 'GN+WS lower')})."
        )
    published = paper.WEIGHT_STANDARDIZATION
    lines.append(
        f"Published (ResNet-50, ImageNet): GN+WS minus GN {format_points(published['group+ws'] - published['group'])}, "
        f"GN+WS minus BN {format_points(published['group+ws'] - published['batch'])} points."
    )
    return lines
