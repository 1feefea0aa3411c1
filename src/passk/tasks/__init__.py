"""Verifiable tasks: prompts, answer extraction and rewards."""

from passk.tasks.base import Problem, Score, Task
from passk.tasks.registry import get_task, list_tasks, register_task

__all__ = ["Problem", "Score", "Task", "get_task", "list_tasks", "register_task"]
