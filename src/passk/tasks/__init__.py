"""Verifiable tasks: prompts, answer extraction and rewards."""

from passk.tasks.base import Problem, Score, Task
from passk.tasks.guard import SafeScorer
from passk.tasks.registry import get_task, list_tasks, register_task, register_task_prefix
from passk.tasks.rewards import RewardTask, get_reward, list_rewards, register_reward

__all__ = [
    "Problem",
    "RewardTask",
    "SafeScorer",
    "Score",
    "Task",
    "get_reward",
    "get_task",
    "list_rewards",
    "list_tasks",
    "register_reward",
    "register_task",
    "register_task_prefix",
]
