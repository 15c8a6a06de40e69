"""`lntune score ...`: JSON and table output, warnings and errors as single lines, exit codes."""

import json
from pathlib import Path

from lntune.cli import main
from lntune.eval.metrics import caption

FIX = Path(__file__).parent / "fixtures" / "metrics"


def test_mme_json_and_table(capsys):
    assert main(["score", "mme", "--results-dir", str(FIX / "mme" / "case1"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["perception"] == 963.6114445778312 and result["cognition"] == 249.64285714285714
    assert main(["score", "mme", "--results-dir", str(FIX / "mme" / "case1"), "--exclude", "landmark,artwork"]) == 0
    table = capsys.readouterr().out
    assert "landmark" not in table
    assert "perception                  782.86" in table   # 963.61 - 93.5 (landmark) - 87.25 (artwork)
    assert "existence                   185.00" in table


def test_pope_table(capsys):
    assert main(["score", "pope", "--annotations", str(FIX / "pope"),
                 "--predictions", str(FIX / "pope" / "predictions.jsonl")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["POPE", "split", "accuracy", "precision", "recall", "f1", "yes_ratio"]
    assert lines[1].split() == ["random", "71.73", "65.89", "90.13", "76.13", "68.40"]
    assert lines[2].split()[:4] == ["95%", "CI", "[70.1,", "73.3]"]  # the interval of each value, below it
    assert lines[-2] == "mean F1 72.38 [71.42, 73.34], mean accuracy 66.99 [66.04, 67.96]"
    assert lines[-1] == "(95% bootstrap intervals in brackets)"


def test_vqav2_json(capsys):
    d = FIX / "vqav2"
    assert main(["score", "vqav2", "--questions", str(d / "questions.json"), "--annotations",
                 str(d / "annotations.json"), "--predictions", str(d / "predictions.json"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == 66.67 and result["per_answer_type"]["yes/no"] == 37.5


def test_caption_without_java_warns_in_one_line(capsys, monkeypatch):
    monkeypatch.setattr(caption.shutil, "which", lambda name: None)
    assert main(["score", "caption", "--references", str(FIX / "caption" / "case2_karpathy.json"),
                 "--predictions", str(FIX / "caption" / "case2_predictions.json"), "--split", "val"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("lntune: warning: java not found") and err.count("\n") == 1
    assert out.splitlines()[-1] == "(50 val images, tokenizer: approximate)"
    assert out.splitlines()[0].startswith("CIDEr")


def test_errors_are_one_line_with_status_2(capsys, tmp_path):
    assert main(["score", "pope", "--annotations", str(tmp_path), "--predictions", str(tmp_path / "p.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err == f"lntune: error: {tmp_path / 'p.jsonl'}: file not found (expected POPE predictions " \
                  "(JSON lines: question_id, category, text))\n"
    assert main(["score", "mme", "--results-dir", str(FIX / "mme" / "case1"), "--exclude", "faces"]) == 2
    assert "unknown MME subtask(s) to exclude: faces" in capsys.readouterr().err
