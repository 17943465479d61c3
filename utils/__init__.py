"""Group Normalization (Wu & He, 2018) reproduced in Keras 3 on Tiny ImageNet-200.

Modules:
    layers        GroupNormalization, InstanceNormalization and the paper's LayerNormalization.
    norms         the normalization registry: one row per normalization (no TensorFlow import).
    models        the networks: the small Tiny ImageNet CNN, ResNet-10 and ResNet-50; make_norm.
    mixtures, distortion, landscape
                  the GN+BN mixture layers, the output-noise layer, the loss-landscape probes.
    measurements  what a run records once an epoch beside its history (fit in inference mode, ...).
    data          Tiny ImageNet loading, decoding cache and tf.data pipelines.
    data_sources  finding, extracting and downloading the data set.
    synthetic     a small synthetic stand-in in the official layout, for offline use.
    config        one frozen dataclass per training run, and its learning-rate schedule.
    experiment    the declarations: Experiment, its Table and Figure, a report Section.
    experiments   what each experiment trains, a module or folder per family (each family's
                  folder holds its tables and figures too), and
                  their registry.
    profiles      the scale of every grid (smoke, cpu, paper): experiments into configs.
    runs          the run folder format: paths, files, atomic writers, locks, the one reader (no TensorFlow).
    planning      what the engine will do with a run: read it back, reuse a finished one, or train it.
    training      run(config): resumable training that writes a self-describing results folder.
    verify        whether this machine reproduces a committed run: its first epochs retrained.
    evaluate      a finished run's saved model (model.keras) loaded and evaluated.
    progress      one progress line for a whole grid, with the time left.
    grid          the grid runner: plans each run, trains or reads it back.
    cli           the command line: python -m utils.experiments --profile cpu --experiment study
    workers       several training processes side by side (--workers), sharing the grid.
    ray_executor  the grid as Ray tasks on one machine or a cluster (--executor ray).
    recipe        the recipe sweep's table and the rule that chose the study's learning rate.
    rates         the rule that picks each method's own learning rate from a sweep.
    paper         the paper's and the 2023 report's numbers, as data.
    run_frame     run folders as one table, a row per run (read by results and rates).
    results       results folders into pandas tables, side by side with the paper.
    report        the generated report (results/README.md) and the README's headline.
    plots         the drawing primitives every family's figures use.
    panels        BN's and GN's curves by batch size, one column per regime (fair comparison, depth).
    figures       every experiment's figures, drawn from a results folder.
    notebook      settings and checks shared by the notebooks.
    reproduce     `make reproduce`: main.ipynb executed top to bottom.
    paths         paths as the project prints them, and the default folders.
    quiet         importing TensorFlow without its C++ start-up lines.
"""

import os

# TensorFlow's C++ log lines (CUDA probing on machines without a GPU, XLA notices) would
# fill every command's output and the saved notebooks; set TF_CPP_MIN_LOG_LEVEL before
# importing utils to see them. Errors still reach Python as exceptions. (The lines it
# prints while it is imported ignore this setting: see utils.quiet.)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
