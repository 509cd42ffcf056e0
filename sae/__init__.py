"""SAE training, loading and evaluation with SAELens (to come). May import `activations`."""
