"""VQAv2 scorer: normalisation rules, per-question accuracy, the fixture set against the official numbers."""

import json
from pathlib import Path

import pytest

from lntune.errors import LntuneError
from lntune.eval.metrics.vqav2 import normalize_vqa_answer, score_vqav2, vqa_accuracy

FIX = Path(__file__).parent / "fixtures" / "metrics" / "vqav2"
Q, A, P = FIX / "questions.json", FIX / "annotations.json", FIX / "predictions.json"


@pytest.mark.parametrize("text, expected", [
    ("Two.", "2"),                      # number word -> digit, final period dropped
    ("T-Shirt", "t shirt"),             # "-" touching no space becomes a space
    ("sun / moon", "sun moon"),         # "/" touching a space is deleted, split() eats the double space
    ("1,000", "1000"),                  # a digit-comma-digit anywhere: every punctuation mark is deleted
    ("3.5.", "3.5"),                    # a period followed by a digit stays
    ("Dont know", "don't know"),        # contraction table
    ("The dog", "dog"),                 # articles dropped
    ("a", ""),
    ("None", "0"),
    ("yes ?", "yes"),
    ("\tyes\n", "yes"),
    ("", ""),
    ("Not sure", "not sure"),
    ("I don't think so", "i don't think so"),  # the apostrophe is not in the punctuation list
    ("The answer is yes", "answer is yes"),
    ("What's up!", "what's up"),        # "!" touching no space becomes a space, then split() drops it
])
def test_normalize_vqa_answer(text, expected):
    assert normalize_vqa_answer(text) == expected


def test_at_most_32_periods_are_removed():
    # The official code passes re.UNICODE (32) as re.sub's count: of 40 periods, 8 survive.
    assert normalize_vqa_answer("a." * 40) == "a" * 33 + ".a" * 7 + "."


def test_vqa_accuracy_by_hand():
    # 2 "red" + 8 "dark red", prediction "red": leaving out a "red" leaves 1 match (1/3), leaving out a
    # "dark red" leaves 2 matches (2/3): (2 * 1/3 + 8 * 2/3) / 10 = 0.6
    assert vqa_accuracy("red", ["red"] * 2 + ["dark red"] * 8) == pytest.approx(0.6, abs=1e-15)
    # All ten answers identical: no normalisation, so "Yes" does not match "yes".
    assert vqa_accuracy("Yes", ["yes"] * 10) == 0.0
    assert vqa_accuracy("yes", ["yes"] * 10) == 1.0
    # 3 of 10 normalise to "dog": leaving out one of them leaves 2 (2/3), else 3 (1): (3*2/3 + 7)/10 = 0.9
    assert vqa_accuracy("The dog", ["a dog"] * 2 + ["dog"] + ["the cat"] * 7) == pytest.approx(0.9, abs=1e-15)
    # Identical answer dicts (no answer_id): leaving one "red" out removes all four equal dicts, as in
    # the official code: 4 x 0 + 6 x min(1, 4/3) = 6 -> 0.6 (with distinct answer_ids it would be 1.0).
    assert vqa_accuracy("red", [{"answer": "red"}] * 4 + [{"answer": "blue"}] * 6) == 0.6
    assert vqa_accuracy("red", [{"answer": "red", "answer_id": i} for i in range(4)]
                        + [{"answer": "blue", "answer_id": 9}] * 6) == 1.0


def test_fixture_equals_official_vqaeval():
    # Expected values: GT-Vision-Lab/VQA's VQA + VQAEval classes (transcribed into /tmp, run once with
    # n=2 on these three files). Per question (evalQA): 1000: 0, 1001: 100, 1002: 0, 1003: 100, 1004: 60,
    # 1005: 100, 1006: 100, 1007: 90, 1008: 100, 1009: 0, 1010: 100, 1011: 100, 1012: 0, 1013: 0,
    # 1014: 100, 1015: 100, 1016: 0, 1017: 90, 1018: 100, 1019: 100, 2000: 60.
    result = score_vqav2(Q, A, P)
    assert result == {
        "accuracy": 66.67,
        "per_answer_type": {"yes/no": 37.5, "number": 80.0, "other": 87.5},
        "per_question_type": {"is the": 37.5, "how many": 80.0, "what color is the": 73.33, "what is the": 96.0},
        "questions": 21,
    }
    annotations = json.loads(A.read_text())["annotations"]
    answers = {p["question_id"]: p["answer"] for p in json.loads(P.read_text())}
    per_question = {a["question_id"]: round(100 * vqa_accuracy(answers[a["question_id"]], a["answers"]), 2)
                    for a in annotations}
    assert per_question == {1000: 0.0, 1001: 100.0, 1002: 0.0, 1003: 100.0, 1004: 60.0, 1005: 100.0, 1006: 100.0,
                            1007: 90.0, 1008: 100.0, 1009: 0.0, 1010: 100.0, 1011: 100.0, 1012: 0.0, 1013: 0.0,
                            1014: 100.0, 1015: 100.0, 1016: 0.0, 1017: 90.0, 1018: 100.0, 1019: 100.0, 2000: 60.0}


def test_loaded_objects_and_order_do_not_matter():
    questions, annotations = json.loads(Q.read_text()), json.loads(A.read_text())
    predictions = list(reversed(json.loads(P.read_text())))
    assert score_vqav2(questions, annotations, predictions)["accuracy"] == 66.67
    assert score_vqav2(None, annotations["annotations"], predictions)["accuracy"] == 66.67
    # The inputs are not modified (the official code normalises the annotations in place).
    assert annotations == json.loads(A.read_text())


def test_null_answer_is_an_error_and_an_empty_one_counts_as_wrong():
    predictions = json.loads(P.read_text())
    predictions[1]["answer"] = ""  # question 1001 was right
    assert score_vqav2(Q, A, predictions)["accuracy"] == round(100 * (14.0 - 1) / 21, 2)
    predictions[1]["answer"] = None
    with pytest.raises(LntuneError, match=r"^predictions item 1: prediction has a null 'answer'$"):
        score_vqav2(Q, A, predictions)


def test_missing_and_unknown_predictions(tmp_path):
    predictions = json.loads(P.read_text())
    with pytest.raises(LntuneError, match=r"3 of 21 annotated questions have no prediction \(first: 1000, 1001, 1002\)"):
        score_vqav2(Q, A, predictions[3:])
    with pytest.raises(LntuneError, match=r"1 predictions are for question ids not in the annotations \(first: 77\)"):
        score_vqav2(Q, A, predictions + [{"question_id": 77, "answer": "yes"}])


def test_file_errors(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text('[{"question_id": 1000,\n  "answer": "yes",}]')
    with pytest.raises(LntuneError, match=r"results.json:2:19: malformed JSON"):
        score_vqav2(Q, A, bad)
    with pytest.raises(LntuneError, match=r"nope.json: file not found \(expected VQAv2 annotations"):
        score_vqav2(Q, tmp_path / "nope.json", P)
    questions = json.loads(Q.read_text())
    questions["questions"] = questions["questions"][:-1]
    with pytest.raises(LntuneError, match=r"1 annotated question ids are not in the questions file \(first: 2000\)"):
        score_vqav2(questions, A, P)


def test_multiple_choice_answers_must_be_choices():
    questions = json.loads(Q.read_text())
    questions["task_type"] = "Multiple Choice"
    for q in questions["questions"]:
        q["multiple_choices"] = ["yes", "no"]
    with pytest.raises(LntuneError, match=r"question 1000: answer 'Yes' is not one of its multiple choices"):
        score_vqav2(questions, A, P)
