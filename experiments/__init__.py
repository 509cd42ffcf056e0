"""Experiments: tasks, model organisms, behaviour, the pipeline and the CLI."""
