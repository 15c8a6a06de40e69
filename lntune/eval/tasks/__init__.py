"""Benchmark tasks for `lntune eval`, one module each (mme, vqav2, captioning, pope); see base.py for the
interface and registry.py for the names.
"""

from lntune.eval.tasks.base import Sample, Task
from lntune.eval.tasks.registry import TASKS, get_task, parse_task_list

__all__ = ["Sample", "Task", "TASKS", "get_task", "parse_task_list"]
