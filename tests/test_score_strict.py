"""Same rules for every scorer: a duplicate id, a missing or null answer/caption is an error naming the file and
line (or item) in `lntune score vqav2` and `score caption`, as in `score pope`; exit status 2, one line."""

import json
from pathlib import Path

import pytest

from lntune.cli import main

FIX = Path(__file__).parent / "fixtures" / "metrics"
VQA = ["score", "vqav2", "--questions", str(FIX / "vqav2" / "questions.json"),
       "--annotations", str(FIX / "vqav2" / "annotations.json"), "--predictions"]
CAPTION = ["score", "caption", "--references", str(FIX / "caption" / "case2_karpathy.json"), "--split", "val",
           "--predictions"]


def _write(path: Path, rows, lines: bool) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) if lines else json.dumps(rows))
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lntune: error: ")
    return err.strip()[len("lntune: error: "):]


@pytest.mark.parametrize("lines", [False, True], ids=["json-list", "json-lines"])
def test_vqav2_duplicate_missing_and_null_answers(tmp_path, capsys, lines):
    rows = json.loads((FIX / "vqav2" / "predictions.json").read_text())
    place = lambda i: f":{i + 1}" if lines else f" (item {i})"  # noqa: E731
    cases = [(rows + [dict(rows[2])], len(rows), f"second prediction for question {rows[2]['question_id']}"),
             ([*rows[:4], {"question_id": rows[4]["question_id"]}, *rows[5:]], 4, "prediction has no 'answer'"),
             ([*rows[:4], {**rows[4], "answer": None}, *rows[5:]], 4, "prediction has a null 'answer'")]
    for predictions, index, message in cases:
        path = _write(tmp_path / "preds.json", predictions, lines)
        assert main([*VQA, str(path)]) == 2
        assert _error(capsys) == f"{path}{place(index)}: {message}"


@pytest.mark.parametrize("lines", [False, True], ids=["json-list", "json-lines"])
def test_caption_missing_and_null_captions(tmp_path, capsys, lines):
    rows = json.loads((FIX / "caption" / "case2_predictions.json").read_text())
    place = lambda i: f":{i + 1}" if lines else f" (item {i})"  # noqa: E731
    for bad, message in (({"image_id": rows[3]["image_id"]}, "prediction has no 'caption'"),
                         ({**rows[3], "caption": None}, "prediction has a null 'caption'")):
        path = _write(tmp_path / "preds.json", [*rows[:3], bad, *rows[4:]], lines)
        assert main([*CAPTION, str(path)]) == 2
        assert _error(capsys) == f"{path}{place(3)}: {message}"
    path = _write(tmp_path / "preds.json", rows + [rows[0]], lines)
    assert main([*CAPTION, str(path)]) == 2
    assert _error(capsys) == f"{path}{place(len(rows))}: second prediction for image {rows[0]['image_id']!r}"
