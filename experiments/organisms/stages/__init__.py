"""The organisms study's own stages and its hooks into the shared ones, one module each (a
stage's code fingerprint is the import closure of its module, so keep them apart):

    models     organisms: train (or reuse) the base and every variant; load one as a bridge
    behavior   the arithmetic behavioural suite on every model
    cache      the token set (arithmetic problems) and what a cache records of its model
    features   latent scores, latent shifts, activation patching (`experiments.elicit`)
    steer      the steering sweep with controls; validation in the base
    figures    which figures a run draws, and their data
    report     report.json and report.md
"""
