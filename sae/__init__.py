"""sae (see DESIGN.md)."""
