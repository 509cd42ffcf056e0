"""Model organisms: a tiny Llama base trained on a synthetic task, and fine-tuned variants."""
