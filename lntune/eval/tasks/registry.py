"""The benchmark tasks by name: `get_task("pope", data_root, ...)` builds one; TASKS lists them in the
paper's Table 1 order (MME, VQAv2, MSCOCO, Flickr30k, POPE).
"""

from __future__ import annotations

from lntune.errors import LntuneError
from lntune.eval.tasks.base import Task
from lntune.eval.tasks.captioning import Coco, Flickr30k
from lntune.eval.tasks.mme import Mme
from lntune.eval.tasks.pope import Pope
from lntune.eval.tasks.vqav2 import Vqav2

TASKS: dict[str, type[Task]] = {"mme": Mme, "vqav2": Vqav2, "coco": Coco, "flickr30k": Flickr30k, "pope": Pope}
EVAL_TASKS = tuple(TASKS)  # every task, in Table 1 order: what quickstart, reproduce and `lntune eval` run


def parse_task_list(text: str | list[str]) -> list[str]:
    """Task names from "mme,pope" (or a list), checked, duplicates dropped, order kept."""
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip().lower() for n in names if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise LntuneError(f"unknown task(s) {', '.join(unknown) or '(none given)'}; choose from: {', '.join(TASKS)}")
    return list(dict.fromkeys(names))


def get_task(name: str, data_root, image_root=None, protocol: str = "official", seed: int = 42) -> Task:
    if name not in TASKS:
        raise LntuneError(f"unknown task {name!r}; choose from: {', '.join(TASKS)}")
    return TASKS[name](data_root, image_root=image_root, protocol=protocol, seed=seed)
