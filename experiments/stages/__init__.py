"""The stages both studies share, each a factory taking the study's hooks (plain functions
of the study; their modules count in the stage's code fingerprint):

    cache     activations/<model>/   every model's residual streams on the same tokens
    sae       saes/                  per-model SAEs (trained or loaded), frontier, crosscoders,
                                     held-out evaluation, transfer, spliced loss
    figures   figures/               every figure the study's data gives, with its numbers
    report    report.json, report.md

What is task-specific (training organisms, the behaviour suites, latent scoring and
steering) is in its study: `experiments.organisms.stages`, `experiments.pairs.stages`.
"""
