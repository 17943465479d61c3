"""The published numbers this project compares against, as data.

Two sources, with different units that must never be mixed:

* The paper: Yuxin Wu and Kaiming He, "Group Normalization", ECCV 2018,
  arXiv:1803.08494. Every number is the top-1 validation error in percent of a
  ResNet-50 (unless stated otherwise) trained on ImageNet, reported as the MEDIAN
  of the last 5 epochs. "Batch size" means images per GPU (8 GPUs, BN statistics
  computed per GPU).
* The 2023 course report that reproduced the paper on Tiny ImageNet-200 with a
  small CNN. Its tables are labelled "val error" but hold the validation
  cross-entropy LOSS (nats), median of the last 5 epochs; it never reported a
  top-1 error. Only its loss can be compared with ours, and only as a loss.

Normalization keys are the project's canonical names: "batch", "layer",
"instance", "group" (and "none" for no normalization).

`report_records()` flattens the report's numbers into one record per number
(pandas-ready: ``pandas.DataFrame(report_records())``).
"""

from __future__ import annotations

from types import MappingProxyType

from utils import norms

CITATION = 'Yuxin Wu and Kaiming He, "Group Normalization", ECCV 2018, arXiv:1803.08494'
PAPER_UNIT = "top-1 validation error (%), median of the last 5 epochs"
PAPER_SETTING = "ResNet-50 on ImageNet, batch size = images per GPU (8 GPUs)"

REPORT_CITATION = "2023 course reproduction of Group Normalization on Tiny ImageNet-200"
REPORT_UNIT = (
    "validation cross-entropy loss (nats), median of the last 5 epochs "
    "(labelled 'val error' in the report, but it is the loss)"
)
REPORT_SETTING = "small CNN (2 conv layers) on Tiny ImageNet-200"

# Short labels used in tables and figures, keyed by canonical name (utils.norms).
NORM_LABELS = norms.LABELS
# The order the paper uses in Table 1 and Figure 4.
TABLE1_NORMS = ("batch", "layer", "instance", "group")
# Images per GPU in Table 2, largest first (the paper's column order).
BATCH_SIZES = (32, 16, 8, 4, 2)


# ---------------------------------------------------------------------------
# The paper (unit: PAPER_UNIT, ResNet-50 on ImageNet unless stated otherwise)
# ---------------------------------------------------------------------------

# Table 1: validation error at 32 images/GPU.
TABLE1 = MappingProxyType({"batch": 23.6, "layer": 25.3, "instance": 28.4, "group": 24.1})
# Table 1's "difference to BN" row as printed in the paper.
TABLE1_DIFFERENCE_TO_BN = MappingProxyType(
    {"batch": 0.0, "layer": 1.7, "instance": 4.8, "group": 0.5}
)

# Table 2: validation error by images per GPU.
TABLE2 = MappingProxyType(
    {
        "batch": MappingProxyType({32: 23.6, 16: 23.7, 8: 24.8, 4: 27.3, 2: 34.7}),
        "group": MappingProxyType({32: 24.1, 16: 24.2, 8: 24.0, 4: 24.2, 2: 24.1}),
    }
)
# Table 2's "GN - BN" row as printed in the paper.
TABLE2_GN_MINUS_BN = MappingProxyType({32: 0.5, 16: 0.5, 8: -0.8, 4: -3.1, 2: -10.6})

# Table 3, top half: number of groups G fixed (G = 1 is Layer Norm), 32 images/GPU.
TABLE3_GROUPS = MappingProxyType({64: 24.6, 32: 24.1, 16: 24.6, 8: 24.4, 4: 24.6, 2: 24.7, 1: 25.3})
# Table 3, bottom half: channels per group C/G fixed (C/G = 1 is Instance Norm), 32 images/GPU.
TABLE3_CHANNELS_PER_GROUP = MappingProxyType(
    {64: 24.4, 32: 24.5, 16: 24.2, 8: 24.3, 4: 24.8, 2: 25.6, 1: 28.4}
)

# Batch Renormalization (r_max 1.5, d_max 0.5) against BN and GN at 4 images/GPU.
BATCH_RENORM_AT_4 = MappingProxyType({"batch_renorm": 26.3, "batch": 27.3, "group": 24.2})

# Weight Standardization (Siyuan Qiao et al., "Micro-Batch Training with Batch-Channel
# Normalization and Weight Standardization", arXiv:1903.10520, 2019): ResNet-50 on
# ImageNet, top-1 error (%), GN+WS beside the GN paper's GN and BN at 32 images/GPU.
WS_CITATION = 'Siyuan Qiao et al., "Weight Standardization", arXiv:1903.10520, 2019'
WEIGHT_STANDARDIZATION = MappingProxyType({"group+ws": 23.72, "group": 24.1, "batch": 23.6})

# "Understanding and Improving Group Normalization" (Agus Gunawan, Xu Yin, Kang Zhang,
# 2021): VGG-11 on CIFAR-10, validation ACCURACY (%) by weight decay (not an error rate).
UNDERSTANDING_CITATION = (
    'Agus Gunawan, Xu Yin and Kang Zhang, "Understanding and Improving Group Normalization", 2021'
)
UNDERSTANDING_WEIGHT_DECAY = MappingProxyType(
    {
        "group": MappingProxyType({0.0: 80.36, 5e-5: 78.34}),
        "batch": MappingProxyType({0.0: 82.82, 5e-5: 82.82}),
    }
)
# ResNet-101 on ImageNet, keyed by images per GPU.
RESNET101 = MappingProxyType(
    {
        32: MappingProxyType({"batch": 22.0, "group": 22.4}),
        2: MappingProxyType({"batch": 31.9, "group": 23.0}),
    }
)
# VGG-16 with a normalization after every convolution (32 images/GPU).
VGG16 = MappingProxyType({"none": 29.2, "batch": 28.0, "group": 27.6})

# ---------------------------------------------------------------------------
# The 2023 report (unit: REPORT_UNIT -- validation LOSS, not an error rate)
# ---------------------------------------------------------------------------

# Batch 32, 100 epochs.
REPORT_TABLE1_LOSS = MappingProxyType(
    {"batch": 3.393, "group": 3.238, "instance": 3.330, "layer": 3.503}
)
# Batch-size sweep, 10 epochs. Its batch size never actually changed (every run had
# 3125 steps per epoch), so these five runs are all really batch-32 runs.
REPORT_TABLE2_LOSS = MappingProxyType(
    {
        "batch": MappingProxyType({32: 4.126, 16: 4.024, 8: 4.062, 4: 4.147, 2: 4.239}),
        "group": MappingProxyType({32: 3.882, 16: 3.904, 8: 3.868, 4: 3.776, 2: 3.831}),
    }
)
REPORT_EPOCHS = MappingProxyType({"norm_comparison": 100, "batch_size_sweep": 10})


def report_records() -> list[dict]:
    """Every loss number of the 2023 report as one flat record (unit: REPORT_UNIT).

    Returns:
        A list of dicts with keys source, experiment, model, dataset, norm, batch_size,
        epochs, value, unit.
    """

    def record(experiment, norm, batch_size, value):
        return {
            "source": "2023 report",
            "experiment": experiment,
            "model": "small CNN",
            "dataset": "Tiny ImageNet-200",
            "norm": norm,
            "batch_size": batch_size,
            "epochs": REPORT_EPOCHS[experiment],
            "value": value,
            "unit": REPORT_UNIT,
        }

    records = [
        record("norm_comparison", norm, 32, value) for norm, value in REPORT_TABLE1_LOSS.items()
    ]
    for norm, by_batch in REPORT_TABLE2_LOSS.items():
        records += [
            record("batch_size_sweep", norm, batch, value) for batch, value in by_batch.items()
        ]
    return records
