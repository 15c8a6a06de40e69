"""One model's scores, read once from the {task: metrics} an evaluation returns (lntune.eval.runner.evaluate,
metrics.json): the single place that knows where each number lives.

    from lntune.eval.scores import Scores
    s = Scores.of(metrics)
    s.mme_perception, s.pope_splits["random"], s.headline(), s.interval("vqav2"), s.selection("flickr30k")

Reports (lntune.reporting, lntune.eval.report), the reproduction's verdicts and the learning-rate sweep all read
these fields instead of digging into the metrics themselves. A task not evaluated leaves its fields None.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lntune.errors import LntuneError

POPE_SPLITS = ("popular", "random", "adversarial")  # the paper's Table 1 order

# Where each headline number lives in {task: metrics} (and in a paired comparison's result): key -> (task, metric).
HEADLINE_SOURCES = {
    "mme_perception": ("mme", "perception"),
    "mme_cognition": ("mme", "cognition"),
    "vqav2": ("vqav2", "accuracy"),
    "coco": ("coco", "CIDEr"),
    "flickr30k": ("flickr30k", "CIDEr"),
    "pope_accuracy": ("pope", "mean_accuracy"),
    "pope_f1": ("pope", "mean_f1"),
}

# The single number a learning-rate sweep maximises, per selection task: the headline keys summed.
SELECTION = {"coco": ("coco",), "flickr30k": ("flickr30k",), "vqav2": ("vqav2",), "pope": ("pope_f1",),
             "mme": ("mme_perception", "mme_cognition")}


@dataclass(frozen=True)
class Scores:
    mme_perception: float | None = None
    mme_cognition: float | None = None  # 0 when no cognition subtask was scored (the world has none)
    vqav2: float | None = None  # VQA accuracy
    coco: float | None = None  # CIDEr x100
    flickr30k: float | None = None
    pope_accuracy: float | None = None  # mean over the splits scored
    pope_f1: float | None = None
    pope_splits: dict[str, float] = field(default_factory=dict)  # accuracy per split scored
    intervals: dict[str, list] = field(default_factory=dict)  # 95% interval per field name, where the metrics have one
    mme_sides: tuple[str, ...] = ()  # "perception" and/or "cognition": the MME sides with a subtask scored

    @classmethod
    def of(cls, metrics: dict) -> "Scores":
        values, intervals = {}, {}
        for key, (task, metric) in HEADLINE_SOURCES.items():
            if task in metrics and metric in metrics[task]:
                values[key] = metrics[task][metric]
                interval = (metrics[task].get("ci95") or {}).get(metric)
                if interval:
                    intervals[key] = interval
        pope = metrics.get("pope") or {}
        splits = {s: pope[s]["accuracy"] for s in POPE_SPLITS if s in pope}
        for split in splits:
            interval = ((pope.get("ci95") or {}).get(split) or {}).get("accuracy")
            if interval:
                intervals[f"pope_{split}"] = interval
        return cls(**values, pope_splits=splits, intervals=intervals, mme_sides=_mme_sides(metrics.get("mme")))

    @property
    def cognition_scored(self) -> float | None:
        """MME cognition, None when not evaluated or when no cognition subtask was scored (a total of 0)."""
        return self.mme_cognition or None

    def headline(self) -> dict:
        """{headline key: value} for the numbers present, in HEADLINE_SOURCES order."""
        values = {key: getattr(self, key) for key in HEADLINE_SOURCES}
        values["mme_cognition"] = self.cognition_scored
        return {key: value for key, value in values.items() if value is not None}

    def headline_intervals(self) -> dict:
        """{headline key: [low, high]} for the headline numbers that carry a 95% interval."""
        return {key: self.intervals[key] for key in self.headline() if self.intervals.get(key)}

    def table1_row(self) -> dict:
        """The paper's Table 1 columns (lntune.reproduce.verdicts.ROW_COLUMNS); None where not evaluated."""
        return {"mme_perception": self.mme_perception, "mme_cognition": self.cognition_scored, "vqav2": self.vqav2,
                "coco": self.coco, "flickr30k": self.flickr30k,
                **{f"pope_{split}": self.pope_splits.get(split) for split in POPE_SPLITS}}

    def interval(self, key: str):
        """The 95% interval of a field (or "pope_<split>"), or None."""
        return self.intervals.get(key)

    def selection(self, task: str) -> float:
        """The single number a sweep maximises when selecting by `task`."""
        check_selection_task(task)
        keys = SELECTION[task]
        if getattr(self, keys[0]) is None:
            raise LntuneError(f"no {task} scores to select by")
        return sum(getattr(self, key) or 0.0 for key in keys)


def check_selection_task(task: str) -> None:
    if task not in SELECTION:
        raise LntuneError(f"unknown selection task {task!r}; choose coco, flickr30k, vqav2, pope or mme")


def _mme_sides(mme: dict | None) -> tuple[str, ...]:
    """The MME sides with a subtask scored (both when the metrics do not list subtasks)."""
    if not mme:
        return ()
    from lntune.eval.tasks.mme import COGNITION, PERCEPTION

    ran = set(mme.get("subtasks", {})) or set(PERCEPTION + COGNITION)
    return tuple(side for side, names in (("perception", PERCEPTION), ("cognition", COGNITION)) if ran & set(names))
