"""SAEs with SAELens: training from the activation cache (`train`, `config`), loading
(`load`), reconstruction, transfer and spliced-loss metrics (`evaluate`), a BatchTopK
crosscoder (`crosscoder`) and model diffing with it (`diff`), ground truth on SAELens'
synthetic data (`synthetic`). May import `activations`."""
