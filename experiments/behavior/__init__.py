"""Behavioural evaluations, written once against the task protocol."""
