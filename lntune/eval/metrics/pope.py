"""POPE object-hallucination metrics, with the rules of the official evaluate.py (RUCAIBox/POPE).

    lntune score pope --annotations DIR --predictions P.jsonl [--json]

or from Python: `score_pope(annotations_dir, predictions)`. DIR holds the label files
coco_pope_{random,popular,adversarial}.json (JSON lines: question_id, image, text, label); each
prediction line is {"question_id", "category": <split>, "text": <the model's answer>}. Predictions are
paired with labels by (category, question_id) — question ids repeat across the three splits — never by
file order. Every split that has predictions must have one for each of its questions; a missing or null
answer is an error naming its line (the official parser would count it as "yes").

Parsing (`parse_pope_answer`): keep the text before the first ".", delete ",", split on single spaces;
if "No", "not" or "no" is one of the words the answer is "no", otherwise "yes" (so "", "None" and
"Not sure." all count as "yes"). A label other than "no" counts as "yes". Per split: accuracy,
precision, recall, F1 of the "yes" class and the share of "yes" answers, all in percent.
"""

from pathlib import Path

from lntune.errors import LntuneError
from lntune.jsonio import first_few, load_jsonl, load_records, required, where

SPLITS = ("random", "popular", "adversarial")
LABEL_FILE = "coco_pope_{split}.json"
_LAYOUT = "a folder with coco_pope_random.json, coco_pope_popular.json, coco_pope_adversarial.json"


NO_WORDS = ("No", "not", "no")


def parse_pope_answer(text) -> str:
    """'yes' or 'no' for one free-form answer, by the official rule (anything unclear is 'yes')."""
    text = "" if text is None else str(text)
    first_sentence = text.split(".")[0]
    words = first_sentence.replace(",", "").split(" ")
    return "no" if any(word in NO_WORDS for word in words) else "yes"


def pope_answer_settled(text: str) -> bool:
    """Whether `parse_pope_answer` gives the same answer for `text` and for every text that continues it.

    True once `text` holds a "." (its first sentence, all the parser reads, is complete), or once a word
    No, not or no in it is followed by a space (later text only adds words after it; a "," deleted later
    cannot join words across a space), which makes the answer "no" whatever follows.
    """
    if "." in text:
        return True
    return any(word in NO_WORDS for word in text.replace(",", "").split(" ")[:-1])


def pope_metrics(answers: list, labels: list) -> dict:
    """Metrics (percent) of parsed answers ('yes'/'no') against labels, in the same order.

    Where the official script would divide by zero (no "yes" answer, or no "yes" label) the value
    is reported as 0.0 instead of crashing.
    """
    tp = fp = tn = fn = 0
    for answer, label in zip(answers, labels, strict=True):
        predicted_yes, actual_yes = answer != "no", label != "no"
        if predicted_yes and actual_yes:
            tp += 1
        elif predicted_yes:
            fp += 1
        elif actual_yes:
            fn += 1
        else:
            tn += 1
    precision = float(tp) / float(tp + fp) if tp + fp else 0.0
    recall = float(tp) / float(tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = (tp + tn) / (tp + tn + fp + fn)
    yes_ratio = (tp + fp) / len(answers)
    return {"accuracy": 100 * accuracy, "precision": 100 * precision, "recall": 100 * recall,
            "f1": 100 * f1, "yes_ratio": 100 * yes_ratio}


def load_pope_labels(annotations_dir, split: str) -> list:
    """The records of one split's label file, in file order."""
    path = Path(annotations_dir) / LABEL_FILE.format(split=split)
    if not path.is_file():
        raise LntuneError(f"{path}: file not found (expected {_LAYOUT}, JSON lines with question_id and label)")
    rows = load_jsonl(path, "POPE labels (JSON lines: question_id, image, text, label)")
    for row in rows:
        if "question_id" not in row or "label" not in row:
            raise LntuneError(f"{path}:{row['_line']}: a POPE label needs 'question_id' and 'label'")
    return rows


def score_pope(annotations_dir, predictions, bootstrap: int = 0, seed: int = 0) -> dict:
    """POPE metrics per split present in `predictions`, plus their mean F1 and mean accuracy.

    predictions: path to a JSON-lines (or JSON list) file, or a list of dicts with question_id,
        category (the split) and text (the answer; "answer" is accepted when "text" is absent).
    Returns {split: {"accuracy", "precision", "recall", "f1", "yes_ratio"}, "mean_f1", "mean_accuracy"},
    plus "ci95" (bootstrap over each split's questions, `bootstrap` resamples seeded by `seed`) when
    bootstrap > 0.
    """
    from lntune.eval.intervals import score_units

    return score_units("pope", pope_units(annotations_dir, predictions), bootstrap, seed)


def pope_units(annotations_dir, predictions) -> list[dict]:
    """Per question of each split present: {"id", "split", "answer", "label"}, the parsed answer and the
    label as "yes"/"no" by the official rules; checked as `score_pope` describes."""
    annotations_dir = Path(annotations_dir)
    if not annotations_dir.is_dir():
        raise LntuneError(f"{annotations_dir}: not a folder (expected {_LAYOUT})")
    source = predictions if isinstance(predictions, (str, Path)) else "predictions"
    if isinstance(predictions, (str, Path)):
        predictions = load_records(predictions, "POPE predictions (JSON lines: question_id, category, text)")

    answers = {}  # split -> question_id -> text
    for i, pred in enumerate(predictions):
        if not isinstance(pred, dict):
            raise LntuneError(f"{source}: item {i} is not a JSON object")
        at = where(pred, source) if "_line" in pred else f"{source} item {i}"
        for key in ("question_id", "category"):
            if key not in pred:
                raise LntuneError(f"{at}: prediction has no '{key}'")
        split = pred["category"]
        if split not in SPLITS:
            raise LntuneError(f"{at}: unknown POPE category {split!r} (expected one of {', '.join(SPLITS)})")
        text = required(pred, "text" if "text" in pred or "answer" not in pred else "answer", at)
        if pred["question_id"] in answers.setdefault(split, {}):
            raise LntuneError(f"{at}: second prediction for {split} question {pred['question_id']!r}")
        answers[split][pred["question_id"]] = text
    if not answers:
        raise LntuneError(f"{source}: no predictions")

    units = []
    for split in SPLITS:
        if split not in answers:
            continue
        labels = load_pope_labels(annotations_dir, split)
        label_of = {row["question_id"]: row["label"] for row in labels}
        missing = [qid for qid in label_of if qid not in answers[split]]
        unknown = [qid for qid in answers[split] if qid not in label_of]
        if missing:
            raise LntuneError(f"{source}: {len(missing)} of {len(label_of)} {split} questions have no prediction "
                              f"(first: {first_few(missing)})")
        if unknown:
            raise LntuneError(f"{source}: {len(unknown)} {split} predictions have question ids not in "
                              f"{LABEL_FILE.format(split=split)} (first: {first_few(unknown)})")
        units += [{"id": qid, "split": split, "answer": parse_pope_answer(answers[split][qid]),
                   "label": "no" if label_of[qid] == "no" else "yes"} for qid in label_of]
    return units


def summarize_pope(units: list[dict]) -> dict:
    """The official POPE result dict from `pope_units` records."""
    result = {}
    for split in SPLITS:
        rows = [unit for unit in units if unit["split"] == split]
        if rows:
            result[split] = pope_metrics([u["answer"] for u in rows], [u["label"] for u in rows])
    present = [s for s in SPLITS if s in result]
    result["mean_f1"] = sum(result[s]["f1"] for s in present) / len(present)
    result["mean_accuracy"] = sum(result[s]["accuracy"] for s in present) / len(present)
    return result
