"""MME scorer: the official answer parsing, a hand-checked file, the real result folders."""

import shutil
from pathlib import Path

import pytest

from lntune.errors import LntuneError
from lntune.eval.metrics.mme import (COGNITION, PERCEPTION, mme_result_line, parse_mme_answer, score_mme,
                                     score_mme_file)

FIX = Path(__file__).parent / "fixtures" / "metrics" / "mme"


@pytest.mark.parametrize("text, expected", [
    ("Yes", "yes"), ("yes\n", "yes"), ("NO", "no"), ("no", "no"), ("Yes, it is.", "yes"),
    ("Not sure", "no"),                  # "not " holds "no"
    ("nope", "no"), ("None of them", "no"),
    ("The answer is yes", "other"),      # "the " holds neither
    ("I don't think so", "other"), ("I think yes", "other"),
    ("", "other"), ("\n", "other"), ("Y", "other"), ("n", "other"),
    ("  yes", "other"),                  # no strip: "  ye" holds neither
    ("noyes", "no"),                     # only the first four characters count: "noye"
])
def test_parse_mme_answer(text, expected):
    assert parse_mme_answer(text) == expected


def _write(path, rows, newline="\n"):
    path.write_text(newline.join("\t".join(r) for r in rows) + newline, encoding="utf-8", newline="")


def test_file_by_hand(tmp_path):
    # image a: both right; image b: "Not sure" parses as "no" against Yes (wrong), "no" right.
    # acc = 3/4, acc+ = 1/2 -> 75 + 50 = 125
    rows = [("a.jpg", "Q1", "Yes", "yes"), ("a.jpg", "Q2", "No", "No, it is not."),
            ("b.jpg", "Q1", "Yes", "Not sure"), ("b.jpg", "Q2", "No", "no")]
    _write(tmp_path / "existence.txt", rows)
    assert score_mme_file(tmp_path / "existence.txt") == {"score": 125.0, "acc": 0.75, "acc_plus": 0.5, "other": 0}
    # Windows line ends read the same (text mode), and the last line may lack its newline.
    _write(tmp_path / "count.txt", rows, newline="\r\n")
    assert score_mme_file(tmp_path / "count.txt")["score"] == 125.0
    (tmp_path / "color.txt").write_text((tmp_path / "existence.txt").read_text().rstrip("\n"))
    assert score_mme_file(tmp_path / "color.txt")["score"] == 125.0
    with pytest.warns(UserWarning, match="no results for MME subtask"):
        result = score_mme(tmp_path)
    assert result == {"perception": 375.0, "cognition": 0.0,
                      "subtasks": {"existence": 125.0, "count": 125.0, "color": 125.0}}


# Official numbers: MME eval_tool/calculation.py (transcribed into /tmp, run once with scikit-learn 1.9.1
# on each folder; its per-subtask task_score and per-type sums).
CASE1 = {"existence": 185.0, "count": 88.33333333333334, "position": 63.333333333333336, "color": 75.0,
         "posters": 79.59183673469389, "celebrity": 47.35294117647059, "scene": 136.75, "landmark": 93.5,
         "artwork": 87.25, "OCR": 107.5, "commonsense_reasoning": 87.14285714285714,
         "numerical_calculation": 65.0, "text_translation": 47.5, "code_reasoning": 50.0}
CASE2 = {"existence": 88.33333333333334, "count": 63.333333333333336, "position": 90.0, "color": 60.0,
         "posters": 65.30612244897958, "celebrity": 47.94117647058823, "scene": 89.25, "landmark": 58.5,
         "artwork": 71.75, "OCR": 77.5, "commonsense_reasoning": 77.85714285714285,
         "numerical_calculation": 57.5, "text_translation": 40.0, "code_reasoning": 50.0}


@pytest.mark.parametrize("case, subtasks, perception, cognition", [
    ("case1", CASE1, 963.6114445778312, 249.64285714285714),
    ("case2", CASE2, 711.9139655862346, 225.35714285714283),
])
def test_real_results_equal_official(case, subtasks, perception, cognition):
    result = score_mme(FIX / case)
    assert result == {"perception": perception, "cognition": cognition, "subtasks": subtasks}


def test_exclude_landmark_and_artwork():
    result = score_mme(FIX / "case1", exclude=("landmark", "artwork"))
    kept = [name for name in PERCEPTION if name not in ("landmark", "artwork")]
    total = 0
    for name in kept:  # the same order of additions as the scorer, so the float is identical
        total += CASE1[name]
    assert result["perception"] == total
    assert result["cognition"] == 249.64285714285714
    assert list(result["subtasks"]) == kept + list(COGNITION)
    assert score_mme(FIX / "case1", exclude="landmark,artwork") == result
    with pytest.raises(LntuneError, match="unknown MME subtask"):
        score_mme(FIX / "case1", exclude=("landmarks",))


def test_bad_files(tmp_path):
    good = [("a.jpg", "Q1", "Yes", "yes"), ("a.jpg", "Q2", "No", "no")]
    _write(tmp_path / "existence.txt", good + [("b.jpg", "Q1", "Yes", "yes")])
    with pytest.raises(LntuneError, match=r"existence.txt: 3 lines, an odd number"):
        score_mme_file(tmp_path / "existence.txt")
    _write(tmp_path / "existence.txt", good[:1] + [("a.jpg", "Q2", "No", "no\twith a tab")])
    with pytest.raises(LntuneError, match=r"existence.txt:2: 5 tab-separated fields, expected 4"):
        score_mme_file(tmp_path / "existence.txt")
    _write(tmp_path / "existence.txt", [("a.jpg", "Q1", "Maybe", "yes"), good[1]])
    with pytest.raises(LntuneError, match=r"existence.txt:1: ground truth 'Maybe' is not Yes or No"):
        score_mme_file(tmp_path / "existence.txt")
    (tmp_path / "existence.txt").write_text("")
    with pytest.raises(LntuneError, match=r"existence.txt: empty"):
        score_mme_file(tmp_path / "existence.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LntuneError, match=r"empty: no MME result files found \(expected one <subtask>.txt"):
        score_mme(empty)


def test_other_answers_are_counted_wrong(tmp_path):
    shutil.copy(FIX / "case2" / "code_reasoning.txt", tmp_path)
    stats = score_mme_file(tmp_path / "code_reasoning.txt")
    assert stats["score"] == CASE2["code_reasoning"]
    assert stats["other"] > 0


def test_result_line_keeps_the_layout(tmp_path):
    line = mme_result_line("a.jpg", "Is it red?\tPlease answer yes or no.", "Yes", "yes\nIt is red.\r\n")
    assert line == "a.jpg\tIs it red? Please answer yes or no.\tYes\tyes It is red.\n"
    (tmp_path / "color.txt").write_text(line + mme_result_line("a.jpg", "Is it blue?", "No", "No\tit is not"))
    assert score_mme_file(tmp_path / "color.txt")["score"] == 200.0
