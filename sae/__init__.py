"""SAEs with SAELens: training from the activation cache (`train`), loading (`load`),
reconstruction, transfer and spliced-loss metrics (`evaluate`); crosscoders to come.
May import `activations`."""
