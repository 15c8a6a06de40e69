"""VQAv2, POPE and MME metrics of resampled question sets, vectorised, for the bootstrap.

    stat = vqav2_statistic(units)            # units: lntune.eval.metrics.vqav2_units records
    values = stat(weights)                   # weights: (resamples x units) draw counts
    values["accuracy"], values["per_answer_type"]["yes/no"]     # one value per resample

Each statistic mirrors its scorer's result dict, and a row of ones gives the scorer's numbers (VQAv2
before its rounding to 2 decimals). The unit of resampling, and so the strata the bootstrap keeps:
VQAv2, a question (one stratum: the mix of answer and question types varies across resamples, and a
type's accuracy is the mean over its questions in each resample; a type no resample drew gets no
value); POPE, a question within its split (the splits are resampled separately with the same resample
index, so the means over splits see one draw of each); MME, an image with both of its questions (acc+
needs the pair), within its subtask, perception and cognition being sums of resampled subtask scores.
Caption statistics are in resampled_captions.py.
"""

from __future__ import annotations

import numpy as np

from lntune.eval.bootstrap import SparseRows


def _grouped_means(labels: list, values: np.ndarray):
    """weights -> {label: weighted mean of `values` over the units with that label} (x100)."""
    names = list(dict.fromkeys(labels))
    rows = np.asarray([names.index(label) for label in labels]) if labels else np.zeros(0, dtype=int)
    columns = np.arange(len(labels))
    sums = SparseRows(rows, columns, values, len(names))
    counts = SparseRows(rows, columns, np.ones(len(labels)), len(names))

    def means(weights: np.ndarray) -> dict:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = 100 * sums.apply(weights) / counts.apply(weights)
        return {name: out[:, i] for i, name in enumerate(names)}

    return means


def vqav2_statistic(units: list[dict]):
    accuracy = np.asarray([u["accuracy"] for u in units], dtype=float)
    per_answer = _grouped_means([u["answer_type"] for u in units], accuracy)
    per_question = _grouped_means([u["question_type"] for u in units], accuracy)

    def statistic(weights: np.ndarray) -> dict:
        return {"accuracy": 100 * (weights @ accuracy) / weights.sum(axis=1),
                "per_answer_type": per_answer(weights), "per_question_type": per_question(weights)}

    return statistic


def vqav2_strata(units: list[dict]):
    return len(units)


def pope_statistic(units: list[dict]):
    from lntune.eval.metrics.pope import SPLITS

    said_yes = np.asarray([u["answer"] != "no" for u in units], dtype=float)
    is_yes = np.asarray([u["label"] != "no" for u in units], dtype=float)
    masks = {s: np.asarray([u["split"] == s for u in units], dtype=float) for s in SPLITS}
    masks = {s: m for s, m in masks.items() if m.any()}
    # Columns: true positives, false positives, true negatives, false negatives, per split.
    cells = {s: np.stack([m * said_yes * is_yes, m * said_yes * (1 - is_yes), m * (1 - said_yes) * (1 - is_yes),
                          m * (1 - said_yes) * is_yes], axis=1) for s, m in masks.items()}

    def statistic(weights: np.ndarray) -> dict:
        out = {split: _pope_metrics(*(weights @ c).T) for split, c in cells.items()}
        out["mean_f1"] = np.mean([out[s]["f1"] for s in cells], axis=0)
        out["mean_accuracy"] = np.mean([out[s]["accuracy"] for s in cells], axis=0)
        return out

    return statistic


def _pope_metrics(tp, fp, tn, fn) -> dict:
    """lntune.eval.metrics.pope.pope_metrics on arrays of counts (0 where a denominator is 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = tp + fp + tn + fn
    return {"accuracy": 100 * (tp + tn) / total, "precision": 100 * precision, "recall": 100 * recall,
            "f1": 100 * f1, "yes_ratio": 100 * (tp + fp) / total}


def pope_strata(units: list[dict]):
    return [u["split"] for u in units]


def mme_statistic(units: list[dict]):
    from lntune.eval.metrics.mme import COGNITION, PERCEPTION

    right = np.asarray([u["right"] for u in units], dtype=float)
    subtasks = [name for name in PERCEPTION + COGNITION if any(u["subtask"] == name for u in units)]
    masks = {name: np.asarray([u["subtask"] == name for u in units], dtype=float) for name in subtasks}
    # Per subtask: questions right, images with both right, images.
    cells = {name: np.stack([m * right, m * (right == 2), m], axis=1) for name, m in masks.items()}

    def statistic(weights: np.ndarray) -> dict:
        scores = {}
        for name, c in cells.items():
            correct, both, images = (weights @ c).T
            scores[name] = 100 * correct / (2 * images) + 100 * both / images
        zero = np.zeros(weights.shape[0])
        return {"perception": sum((scores[n] for n in subtasks if n in PERCEPTION), zero),
                "cognition": sum((scores[n] for n in subtasks if n in COGNITION), zero), "subtasks": scores}

    return statistic


def mme_strata(units: list[dict]):
    return [u["subtask"] for u in units]
