"""Scorers refuse what they cannot score honestly: a missing or null POPE answer (the official parser would read
"yes"), an MME image pair listed twice, a results file named after no MME subtask, JSON nested a million deep;
each is one error line naming the file and line."""

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import assert_one_error, cli, snapshot  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "metrics"


def _pope_labels(tmp_path) -> Path:
    labels = tmp_path / "labels"
    shutil.copytree(FIXTURES / "pope", labels)
    (labels / "predictions.jsonl").unlink()
    return labels


def _answers_to_no_questions_only(labels: Path) -> list[dict]:
    rows = [json.loads(line) for line in (labels / "coco_pope_random.json").read_text().splitlines() if line.strip()]
    return [{"question_id": r["question_id"], "category": "random", **({"text": "No."} if r["label"] == "no" else {})}
            for r in rows]


@pytest.mark.parametrize("answer", ["missing", "null"])
def test_pope_refuses_a_missing_or_null_answer(tmp_path, answer):
    labels = _pope_labels(tmp_path)
    rows = _answers_to_no_questions_only(labels)  # all "no" questions right, the others unanswered: 100% before
    if answer == "null":
        rows = [{**row, "text": row.get("text")} for row in rows]
    first_bad = next(i for i, row in enumerate(rows, 1) if row.get("text") is None)
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    before = snapshot(tmp_path)
    assert_one_error(*cli("score", "pope", "--annotations", labels, "--predictions", predictions),
                     f"{predictions}:{first_bad}: prediction has {'no' if answer == 'missing' else 'a null'} 'text'")
    assert snapshot(tmp_path) == before


def test_mme_refuses_a_pair_listed_twice_and_an_unknown_subtask_file(tmp_path):
    results = tmp_path / "mme"
    shutil.copytree(FIXTURES / "mme" / "case1", results)
    lines = (results / "OCR.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (results / "OCR.txt").write_text("".join(lines + lines[:2]), encoding="utf-8")
    assert_one_error(*cli("score", "mme", "--results-dir", results),
                     f"{results / 'OCR.txt'}:{len(lines) + 1}: image '0001.jpg' again (first on line 1)")
    (results / "OCR.txt").write_text("".join(lines), encoding="utf-8")
    assert cli("score", "mme", "--results-dir", results)[0] == 0
    shutil.copy(results / "color.txt", results / "colour.txt")
    before = snapshot(tmp_path)
    assert_one_error(*cli("score", "mme", "--results-dir", results), f"{results / 'colour.txt'}: not an MME subtask")
    assert snapshot(tmp_path) == before


def test_json_nested_a_million_deep_is_one_error(tmp_path):
    labels = _pope_labels(tmp_path)
    predictions = tmp_path / "deep.json"
    predictions.write_text("[" * 1_000_000 + "]" * 1_000_000)
    assert_one_error(*cli("score", "pope", "--annotations", labels, "--predictions", predictions),
                     f"{predictions}: JSON nested too deeply")
