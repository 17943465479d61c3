"""Group Normalization (Wu & He, 2018) reproduced in Keras 3 on Tiny ImageNet-200.

Modules:
    layers       GroupNormalization, InstanceNormalization and the paper's LayerNormalization.
    models       the normalization registry, the small Tiny ImageNet CNN and ResNet-50.
    data         Tiny ImageNet download, loading, caching, tf.data pipelines, synthetic stand-in.
    config       one frozen dataclass per training run, and the profiles (grids of runs).
    training     run(config): resumable training that writes a self-describing results folder.
    experiments  the command line: python -m utils.experiments --profile cpu --experiment all
    paper        the paper's and the 2023 report's numbers, as data.
    results      results folders into pandas tables, side by side with the paper.
    plots        the figures.
"""
