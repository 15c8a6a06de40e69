"""Does a model answer yes/no questions from the image? Its yes-vs-no score with true and shuffled images.

For every yes/no question of a data root's POPE files (three splits) and MME subtasks, the score is

    score = log P(yes) - log P(no)        at the first answer token

where P(yes) sums the probabilities of the first tokens of "Yes" and "yes" (a logsumexp of their log
probabilities) and P(no) those of "No" and "no". The prompt is exactly the one `lntune eval` asks (the
POPE and MME task classes build it). Each question is scored twice: with its own image and with an image
shuffled among the questions of the same task (a seeded permutation). A model that reads the image
separates yes from no (ROC AUC well above 0.5) with the true images and not with shuffled ones; a model
that answers from the question text alone scores the same either way. Definitions: docs/analysis.md.

    lntune analyze grounding --model runs/ln --data-root WORLD/eval [--seed 0] [--out analysis/] [--json]

    from lntune.analysis.grounding import grounding_scores
    result = grounding_scores(model, processor, "WORLD/eval", seed=0, batch_size=16)
    result["groups"]["pope"]["true"]["auc"], result["groups"]["pope"]["shuffled"]["auc"]

One forward pass per distinct (image, prompt) pair, no generation: the questions about one image share a
batch and run their common prompt prefix once (lntune/eval/shared_prefix.py), and the logits are read at
each row's last prompt position only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lntune.errors import LntuneError

YES_WORDS = ("Yes", "yes")
NO_WORDS = ("No", "no")
BOOTSTRAP_RESAMPLES = 1000


@dataclass
class YesNoQuestion:
    """One yes/no question: `group` is "pope/<split>" or "mme/<subtask>", `label` true when the answer is yes."""

    id: str
    task: str
    group: str
    image: Path
    prompt: str
    label: bool


def yes_no_questions(processor, data_root, image_root=None, limit: int | None = None,
                     tasks: tuple[str, ...] = ("pope", "mme")) -> list[YesNoQuestion]:
    """The POPE and MME questions under `data_root` (whichever of `tasks` are present), with their eval prompts."""
    from lntune.eval.generate import render_prompt
    from lntune.eval.tasks.mme import Mme
    from lntune.eval.tasks.pope import Pope

    data_root = Path(data_root)
    if not data_root.is_dir():
        raise LntuneError(f"data root {data_root} is not a folder (expected pope/ and/or mme/ in it)")
    questions = []
    for task_class in (Pope, Mme):
        if task_class.name not in tasks or not (data_root / task_class.name).is_dir():
            continue
        task = task_class(data_root, image_root=image_root)
        for sample in task.samples(limit):
            group, answer = ((sample.meta["category"], sample.meta["label"]) if task.name == "pope"
                             else (sample.meta["subtask"], sample.meta["gt"]))
            if str(answer).strip().lower() not in ("yes", "no"):
                raise LntuneError(f"{task.name}: sample {sample.id} has label {answer!r}, expected yes or no")
            questions.append(YesNoQuestion(id=f"{task.name}/{sample.id}", task=task.name, group=f"{task.name}/{group}",
                                           image=sample.image, prompt=render_prompt(processor, sample.messages),
                                           label=str(answer).strip().lower() == "yes"))
    if not questions:
        raise LntuneError(f"{data_root}: no pope/ or mme/ folder with yes/no questions (see docs/evaluation.md)")
    return questions


def shuffled_images(questions: list[YesNoQuestion], seed: int) -> list[Path]:
    """Each question's image replaced by one drawn by a seeded permutation among the questions of its task."""
    images = [q.image for q in questions]
    for task in dict.fromkeys(q.task for q in questions):
        positions = [i for i, q in enumerate(questions) if q.task == task]
        permuted = [images[i] for i in positions]
        random.Random(f"{seed}/{task}").shuffle(permuted)
        for i, image in zip(positions, permuted):
            images[i] = image
    return images


def first_token_ids(tokenizer, words) -> list[int]:
    """The distinct first token ids of `words`, each encoded alone without special tokens."""
    return sorted({tokenizer.encode(w, add_special_tokens=False)[0] for w in words})


def yes_no_score_fn(tokenizer):
    """A function from next-token logits (rows x vocab) to log P(yes) - log P(no) per row."""
    import torch

    yes, no = first_token_ids(tokenizer, YES_WORDS), first_token_ids(tokenizer, NO_WORDS)
    if set(yes) & set(no):
        raise LntuneError(f"the tokenizer starts yes and no with the same token ({sorted(set(yes) & set(no))}); "
                          "a first-token yes-vs-no score is undefined")

    def score(logits):
        logp = logits.float().log_softmax(-1)
        return torch.logsumexp(logp[:, yes], -1) - torch.logsumexp(logp[:, no], -1)

    return score


def yes_no_scores(model, processor, prompts: list[str], images: list[Path], ids: list[str], batch_size: int = 16,
                  progress: bool = True, desc: str = "yes/no") -> list[float]:
    """The yes-vs-no score of each (prompt, image path) pair; each distinct pair is computed once.

    `ids` name the questions in error messages (an unreadable image names the first question asking it).
    """
    import torch
    from tqdm import tqdm

    from lntune.eval.runner import open_image
    from lntune.eval.shared_prefix import group_by_image, plan_shared_prefix
    from lntune.model.load import ready_for_inference

    if batch_size < 1:
        raise LntuneError(f"batch size must be at least 1, got {batch_size}")
    score = yes_no_score_fn(processor.tokenizer)
    first_asker = {}
    for pair, question_id in zip(zip(images, prompts), ids):
        first_asker.setdefault(pair, question_id)
    pairs = list(first_asker)
    lengths = processor.tokenizer([p for _, p in pairs], add_special_tokens=False)["input_ids"]
    order = group_by_image([path for path, _ in pairs], [len(ids) for ids in lengths])
    results: dict[tuple, float] = {}
    was_training = model.training
    model.eval()
    ready_for_inference(model)
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", disable=not progress,
                          dynamic_ncols=True):
            batch = [pairs[i] for i in order[start:start + batch_size]]
            images_now = [open_image(path, first_asker[(path, prompt)], "grounding") for path, prompt in batch]
            texts = [prompt for _, prompt in batch]
            shared = plan_shared_prefix(model, processor, texts, images_now, [path for path, _ in batch])
            with torch.inference_mode():
                if shared is not None:
                    logits = model(**shared.remainder_inputs(model, shared.prefill(model)), logits_to_keep=1).logits[:, -1]
                else:
                    inputs = processor(text=texts, images=images_now, return_tensors="pt", padding=True,
                                       padding_side="right").to(model.device)
                    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
                    # Right padding leaves every row's positions as if it were alone; read its last real position.
                    last = inputs["attention_mask"].sum(1, keepdim=True) - 1
                    logits = model(**inputs, logits_to_keep=last).logits[:, 0]
            results.update(zip(batch, score(logits).tolist()))
    finally:
        model.train(was_training)
    return [results[pair] for pair in zip(images, prompts)]


def roc_auc(scores, labels) -> float | None:
    """ROC AUC of `scores` against boolean `labels`: P(score of a yes > score of a no), ties counting one half.

    None when the labels hold only one class.
    """
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return None
    return float((_midranks(scores)[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks where tied values share the mean of their ranks (the Mann-Whitney U convention)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def summarize(scores, labels) -> dict:
    """n, accuracy and yes-rate in percent (score > 0 answers yes) and ROC AUC of one set of scores."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    says_yes = scores > 0
    auc = roc_auc(scores, labels)
    return {"n": int(len(scores)), "accuracy": round(100 * float((says_yes == labels).mean()), 2),
            "yes_rate": round(100 * float(says_yes.mean()), 2), "auc": None if auc is None else round(auc, 4)}


def paired_intervals(true_scores, shuffled_scores, labels, seed: int = 0,
                     resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """95% percentile bootstrap intervals (questions resampled, paired) of true minus shuffled accuracy and AUC."""
    true_scores, shuffled_scores = np.asarray(true_scores, float), np.asarray(shuffled_scores, float)
    labels = np.asarray(labels, bool)
    rng = np.random.default_rng(seed)
    accuracy, auc = [], []
    for _ in range(resamples):
        idx = rng.integers(0, len(labels), len(labels))
        y = labels[idx]
        accuracy.append(100 * (((true_scores[idx] > 0) == y).mean() - ((shuffled_scores[idx] > 0) == y).mean()))
        a, b = roc_auc(true_scores[idx], y), roc_auc(shuffled_scores[idx], y)
        if a is not None and b is not None:
            auc.append(a - b)

    def interval(values, digits):
        return None if not values else [round(float(v), digits) for v in np.percentile(values, [2.5, 97.5])]

    return {"accuracy": interval(accuracy, 2), "auc": interval(auc, 4)}


def _group_order(questions: list[YesNoQuestion]) -> list[tuple[str, list[int]]]:
    """(name, question indices) for every split/subtask, then each task as a whole, then everything."""
    groups = []
    for task in dict.fromkeys(q.task for q in questions):
        in_task = [i for i, q in enumerate(questions) if q.task == task]
        subgroups = list(dict.fromkeys(questions[i].group for i in in_task))
        groups += [(g, [i for i in in_task if questions[i].group == g]) for g in subgroups]
        groups.append((task, in_task))
    groups.append(("overall", list(range(len(questions)))))
    return groups


def grounding_scores(model, processor, data_root, image_root=None, seed: int = 0, batch_size: int = 16,
                     limit: int | None = None, progress: bool = True, tasks: tuple[str, ...] = ("pope", "mme")) -> dict:
    """Yes-vs-no scores of every POPE/MME question (of `tasks`) with true and shuffled images, summarized per group.

    Returns {"seed", "data_root", "groups": {name: {"true", "shuffled", "difference"}}, "questions": [...]}:
    groups are "pope/<split>", "mme/<subtask>", "pope", "mme" and "overall"; "true" and "shuffled" hold
    n, accuracy, yes_rate (percent) and auc; "difference" holds true minus shuffled accuracy and AUC with
    95% paired bootstrap intervals over questions. `limit` keeps the first N questions per POPE split /
    MME subtask, as in `lntune eval`.
    """
    questions = yes_no_questions(processor, data_root, image_root, limit, tasks)
    prompts = [q.prompt for q in questions]
    ids = [q.id for q in questions]
    true = yes_no_scores(model, processor, prompts, [q.image for q in questions], ids, batch_size, progress,
                         "true images")
    shuffled_paths = shuffled_images(questions, seed)
    shuffled = yes_no_scores(model, processor, prompts, shuffled_paths, ids, batch_size, progress, "shuffled images")
    groups = {}
    for name, idx in _group_order(questions):
        labels = [questions[i].label for i in idx]
        a, b = summarize([true[i] for i in idx], labels), summarize([shuffled[i] for i in idx], labels)
        difference = {"accuracy": round(a["accuracy"] - b["accuracy"], 2),
                      "auc": None if a["auc"] is None or b["auc"] is None else round(a["auc"] - b["auc"], 4)}
        intervals = paired_intervals([true[i] for i in idx], [shuffled[i] for i in idx], labels, seed)
        difference.update(accuracy_interval=intervals["accuracy"], auc_interval=intervals["auc"])
        groups[name] = {"true": a, "shuffled": b, "difference": difference}
    return {"seed": seed, "data_root": str(data_root), "limit": limit, "groups": groups,
            "questions": [{"id": q.id, "group": q.group, "label": q.label, "image": str(q.image),
                           "shuffled_image": str(s), "true": t, "shuffled": u}
                          for q, s, t, u in zip(questions, shuffled_paths, true, shuffled)]}


def grounding_table(result: dict) -> str:
    """A plain-text table of a `grounding_scores` result: true vs shuffled per group, and the differences."""
    columns = (f"{'group':<30} {'n':>5} | {'acc':>6} {'yes%':>6} {'AUC':>6} | {'acc':>6} {'yes%':>6} {'AUC':>6} | "
               f"{'d acc':>7} {'d AUC':>7}")
    lines = [f"{'':<30} {'':>5} | {'true images':^20} | {'shuffled images':^20} | {'true - shuffled':^15}",
             columns, "-" * len(columns)]
    for name, g in result["groups"].items():
        t, s, d = g["true"], g["shuffled"], g["difference"]
        lines.append(f"{name:<30} {t['n']:>5} | {t['accuracy']:>6.1f} {t['yes_rate']:>6.1f} {_num(t['auc'])} | "
                     f"{s['accuracy']:>6.1f} {s['yes_rate']:>6.1f} {_num(s['auc'])} | "
                     f"{d['accuracy']:>+7.1f} {_num(d['auc'], 7, '+')}")
    lines.append(f"accuracy and yes% in percent (score > 0 answers yes); images shuffled within each task, seed "
                 f"{result['seed']}; 95% bootstrap intervals of the differences in the JSON")
    return "\n".join(lines)


def _num(value, width: int = 6, sign: str = "") -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{sign}{width}.3f}"
