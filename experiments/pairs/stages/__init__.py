"""The pairs study's own stages and its hooks into the shared ones, one module each (a
stage's code fingerprint is the import closure of its module, so keep them apart):

    load       a model of the pair as a TransformerBridge, its tokenizer, the problems
    models     each model found (fast failure offline), one tokenizer
    behavior   the text behaviour suite, with every generated CoT
    cache      the token set (gold, mistake and generated texts) and what a cache records
    features   ReasonScore on reasoning words; ablation in the base
    steer      clamp the reasoning latents in each variant
    figures    which figures a run draws, and their data
    report     report.json and report.md

Under torchrun the behaviour, features and steer stages split every generation and scoring
call between the ranks (`experiments.engine.distributed.split_map`: every rank builds the
same prompts, each runs its slice, all get the results; rank 0 writes).
"""
