"""activations (see DESIGN.md)."""
