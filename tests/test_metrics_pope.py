"""POPE scorer: the official answer parsing, hand-checked metrics, the real label files and predictions."""

import json
import shutil
from pathlib import Path

import pytest

from lntune.errors import LntuneError
from lntune.eval.metrics.pope import parse_pope_answer, pope_metrics, score_pope

FIX = Path(__file__).parent / "fixtures" / "metrics" / "pope"
PRED = FIX / "predictions.jsonl"


@pytest.mark.parametrize("text, expected", [
    ("Yes.", "yes"), ("yes", "yes"), ("Yes", "yes"), ("No", "no"), ("no.", "no"),
    ("NO", "yes"),                       # only "No", "no" and "not" count; the official rule is case-sensitive
    ("", "yes"), ("None", "yes"), (None, "yes"),
    ("Not really", "yes"), ("Not sure", "yes"),   # "Not" is not "not"
    ("I don't think so", "yes"),
    ("The answer is yes", "yes"),
    ("There is no car, but there is a cat.", "no"),
    ("There is not a car.", "no"),
    ("No, there is no car in the image.", "no"),  # "No," loses its comma before the split
    ("I see a car, yes", "yes"),
    ("Yes. No.", "yes"),                 # only the first sentence counts
    ("no\nthere is none", "yes"),        # split on " " only: "no\nthere" is one word
])
def test_parse_pope_answer(text, expected):
    assert parse_pope_answer(text) == expected


def test_metrics_by_hand():
    # labels  yes yes no  no yes      TP=2 (1st, 5th), FN=1 (2nd), FP=1 (3rd), TN=1 (4th)
    # answers yes no  yes no yes      acc 3/5, precision 2/3, recall 2/3, F1 2/3, yes ratio 3/5
    m = pope_metrics(["yes", "no", "yes", "no", "yes"], ["yes", "yes", "no", "no", "yes"])
    assert m == {"accuracy": 60.0, "precision": 100 * (2 / 3), "recall": 100 * (2 / 3),
                 "f1": 100 * (2 * (2 / 3) * (2 / 3) / (2 / 3 + 2 / 3)), "yes_ratio": 60.0}


def test_no_yes_answer_gives_zero_instead_of_crashing():
    m = pope_metrics(["no", "no"], ["yes", "no"])
    assert m == {"accuracy": 50.0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "yes_ratio": 0.0}


# Official numbers: RUCAIBox/POPE evaluate.py (transcribed into /tmp, run once per split on the answers
# of predictions.jsonl put into each label file's order, as that script pairs by line order).
# TP/FP/TN/FN: random 1352/700/800/148, popular 1317/801/699/183, adversarial 1222/861/639/278.
OFFICIAL = {
    "random": {"accuracy": 0.7173333333333334, "precision": 0.6588693957115009, "recall": 0.9013333333333333,
               "f1": 0.7612612612612613, "yes_ratio": 0.684},
    "popular": {"accuracy": 0.672, "precision": 0.6218130311614731, "recall": 0.878,
                "f1": 0.7280265339966833, "yes_ratio": 0.706},
    "adversarial": {"accuracy": 0.6203333333333333, "precision": 0.5866538646183389,
                    "recall": 0.8146666666666667, "f1": 0.6821099637175552, "yes_ratio": 0.6943333333333334},
}


def test_real_samples_equal_official():
    result = score_pope(FIX, PRED)
    for split, values in OFFICIAL.items():
        assert result[split] == {k: 100 * v for k, v in values.items()}
    assert result["mean_f1"] == sum(100 * OFFICIAL[s]["f1"] for s in OFFICIAL) / 3
    assert result["mean_accuracy"] == sum(100 * OFFICIAL[s]["accuracy"] for s in OFFICIAL) / 3


def test_pairs_by_split_and_id_not_by_order():
    rows = [json.loads(line) for line in PRED.read_text().splitlines()]
    assert score_pope(FIX, list(reversed(rows))) == score_pope(FIX, rows)
    only_random = [r for r in rows if r["category"] == "random"]
    result = score_pope(FIX, only_random)
    assert set(result) == {"random", "mean_f1", "mean_accuracy"}
    assert result["mean_f1"] == 100 * OFFICIAL["random"]["f1"]


def test_bad_predictions(tmp_path):
    rows = [json.loads(line) for line in PRED.read_text().splitlines()]
    random_rows = [r for r in rows if r["category"] == "random"]
    with pytest.raises(LntuneError, match=r"2 of 3000 random questions have no prediction"):
        score_pope(FIX, random_rows[2:])
    with pytest.raises(LntuneError, match=r"1 random predictions have question ids not in coco_pope_random.json \(first: 9999\)"):
        score_pope(FIX, random_rows + [{"question_id": 9999, "category": "random", "text": "yes"}])
    with pytest.raises(LntuneError, match=r"unknown POPE category 'gqa'"):
        score_pope(FIX, [{"question_id": 1, "category": "gqa", "text": "yes"}])
    with pytest.raises(LntuneError, match=r"second prediction for random question 1"):
        score_pope(FIX, random_rows + [{"question_id": 1, "category": "random", "text": "no"}])
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"question_id": 1, "category": "random", "text": "yes"}\n{"question_id": 2, "category": random}\n')
    with pytest.raises(LntuneError, match=r"p.jsonl:2:\d+: malformed JSON"):
        score_pope(FIX, bad)


def test_missing_label_file(tmp_path):
    shutil.copy(FIX / "coco_pope_random.json", tmp_path)
    rows = [json.loads(line) for line in PRED.read_text().splitlines()]
    assert set(score_pope(tmp_path, [r for r in rows if r["category"] == "random"])) == {
        "random", "mean_f1", "mean_accuracy"}
    with pytest.raises(LntuneError, match=r"coco_pope_popular.json: file not found \(expected a folder with coco_pope_random.json"):
        score_pope(tmp_path, rows)
    with pytest.raises(LntuneError, match=r"not a folder"):
        score_pope(tmp_path / "nope", rows)
