"""Real base/fine-tuned model pairs (HF ids or folders) on a text chain-of-thought task:
the same stages as the organisms' pipeline (behaviour, caches, SAEs, features, steering,
report), run by `saelab run` on a config with a `models` section."""
