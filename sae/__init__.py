"""SAEs with SAELens: training from the activation cache (`train`); loading, evaluation,
transfer and crosscoders to come. May import `activations`."""
