"""saelab tests: tiny CPU models, offline."""
