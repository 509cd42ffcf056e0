"""Latent scores and interventions (to come). May import `sae` and `activations`."""
