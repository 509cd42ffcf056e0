"""Reasoning tasks with per-step ground truth (see `protocol.Task`)."""

from experiments.tasks.arithmetic import ArithmeticTask, TaskConfig
from experiments.tasks.protocol import (
    LABEL_NAMES, ROLES, SLOTS, UNDEFINED, CharLabels, Example, Parsed, Step, Task, token_labels,
)

__all__ = ["ArithmeticTask", "TaskConfig", "LABEL_NAMES", "ROLES", "SLOTS", "UNDEFINED",
           "CharLabels", "Example", "Parsed", "Step", "Task", "token_labels"]
