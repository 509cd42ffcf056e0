"""The mechanistic half of the organisms study: where fine-tuning changed the computation,
which latents it moved, and whether steering them brings the base's CoT-following back.

Everything runs on model-independent probe items (`experiments.probe_items`): held-out
k-step problems and a variant's own training problems, each with its gold CoT and with
propagated corruptions, forced answer = argmax after the answer prefix. Metrics: accuracy
(gold CoT), follow (corrupted CoT), for the held-out and the trained set.

features stage  features/<variant>.json
  - ReasonScore of every latent of the model's own SAE (top latents listed)
  - latent shift at the answer position: base and variant read through the base's SAE
  - decoder matching of the paired SAEs (base latent -> most similar variant latent)
  - with a crosscoder of base and variant: its top ReasonScore latents with their relative
    decoder norm, class and Latent Scaling ratios (do the reasoning latents survive?)
  - activation patching base -> variant and variant -> base, per layer, component
    (attention out, MLP out, residual) and position role: the oracle upper bound
steer stage     steering/<variant>.json
  - ablate the latents whose answer-position activation grew most (1..N), with matched
    random latents as the control; the difference-of-means vector (base - variant) x alpha,
    with a random direction of the same norm as the control; the base SAE's reconstruction
    without its error; the patching oracle; gap recovered per metric
  - causal validation in the base: ablating its top ReasonScore latents vs random ones

One idea per module (they import each other by full name, never through this package):

    config          ElicitConfig (the `features:` section of a run config), COMPONENTS
    probe           the probe sets of a variant, their metrics, one model under many
                    answer-position interventions
    patching        the activation patching table (the oracle)
    latents         per-latent records: value probes, causal scores, crosscoder survival,
                    mean activation by role, the ranked table
    features_stage  run_features: features/<model>.json
    steer_stage     run_steer: steering/<variant>.json
    validation      validate_in_base: steering/base-validation.json
"""
