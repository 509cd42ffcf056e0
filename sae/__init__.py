"""SAEs with SAELens: training from the activation cache (`train`), loading (`load`),
reconstruction metrics and transfer (`evaluate`); crosscoders to come. May import `activations`."""
