"""Loading models (HF or TransformerLens bridge) and batched generation; the HDF5
activation cache will live here. Knows nothing of SAEs, tasks or experiments."""
