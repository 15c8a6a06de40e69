"""Bootstrap intervals: each resample is scored exactly as the official scorer scores the resampled set,
intervals hold the point estimate, are seeded, match the normal approximation on a large set, and reach
`lntune score --json` and its tables."""

import json
from pathlib import Path

import numpy as np
import pytest

from lntune.cli import main
from lntune.eval import metrics
from lntune.eval.bootstrap import paired_difference, percentile_interval, resample_weights
from lntune.eval.intervals import benchmark, score_units
from lntune.eval.metrics import caption

FIX = Path(__file__).parent / "fixtures" / "metrics"


def _units(name, monkeypatch):
    if name == "vqav2":
        d = FIX / "vqav2"
        return metrics.vqav2_units(d / "questions.json", d / "annotations.json", d / "predictions.json")
    if name == "pope":
        return metrics.pope_units(FIX / "pope", FIX / "pope" / "predictions.jsonl")
    if name == "mme":
        return metrics.mme_units(FIX / "mme" / "case1")
    monkeypatch.setattr(caption.shutil, "which", lambda name: None)  # the approximate tokenizer: no Java start-up
    with pytest.warns(UserWarning, match="java not found"):
        return caption.caption_units(FIX / "caption" / "case2_karpathy.json", FIX / "caption" / "case2_predictions.json",
                                     split="val")[0]


def _leaves(tree, prefix=()):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def _at(tree, path):
    for key in path:
        tree = tree[key]
    return tree


@pytest.mark.parametrize("name", ["vqav2", "pope", "mme", "caption"])
def test_a_resample_scores_as_the_official_scorer_scores_the_duplicated_set(name, monkeypatch):
    units = _units(name, monkeypatch)
    spec = benchmark(name)
    statistic = spec.statistic(units)
    rows = np.vstack([np.ones(len(units)), next(resample_weights(spec.strata(units), 3, seed=7))])
    values = statistic(rows)
    for row, counts in enumerate(rows):
        drawn = [dict(u, id=(u["id"], copy)) for u, c in zip(units, counts) for copy in range(int(c))]
        official = spec.summary(drawn)
        for path, samples in _leaves(values):
            # VQAv2 rounds its official numbers to 2 decimals; the others agree to float precision.
            assert samples[row] == pytest.approx(_at(official, path), abs=0.005 if name == "vqav2" else 1e-9), path


@pytest.mark.parametrize("name", ["vqav2", "pope", "mme", "caption"])
def test_intervals_hold_the_point_and_repeat_exactly(name, monkeypatch):
    units = _units(name, monkeypatch)
    first = score_units(name, units, bootstrap=200, seed=3)
    assert score_units(name, units, bootstrap=200, seed=3)["ci95"] == first["ci95"]
    assert score_units(name, units, bootstrap=200, seed=4)["ci95"] != first["ci95"]
    ci = first.pop("ci95")
    assert first == score_units(name, units)  # the official numbers do not change
    leaves = dict(_leaves(ci))
    assert leaves and {path for path in leaves} <= {path for path, _ in _leaves(first)}
    assert sum(high > low for low, high in leaves.values()) >= len(leaves) / 2


def test_percentile_interval_is_the_central_share_widened_to_the_point():
    import numpy as np

    from lntune.eval.bootstrap import percentile_interval

    draws = np.arange(101, dtype=float)
    assert percentile_interval(draws, point=50.0) == pytest.approx([2.5, 97.5])
    assert percentile_interval(draws, point=99.0) == pytest.approx([2.5, 99.0])
    assert percentile_interval(np.array([np.nan, 1.0, 3.0]), confidence=0.5) == pytest.approx([1.5, 2.5])
    assert percentile_interval(np.array([np.nan])) is None


def test_the_structure_mirrors_each_result(monkeypatch):
    pope = score_units("pope", _units("pope", monkeypatch), bootstrap=50)
    assert set(pope["ci95"]) == {"random", "popular", "adversarial", "mean_f1", "mean_accuracy"}
    assert set(pope["ci95"]["random"]) == {"accuracy", "precision", "recall", "f1", "yes_ratio"}
    mme = score_units("mme", _units("mme", monkeypatch), bootstrap=50)
    assert set(mme["ci95"]) == {"perception", "cognition", "subtasks"}
    assert set(mme["ci95"]["subtasks"]) == set(mme["subtasks"]) and len(mme["subtasks"]) == 14
    vqa = score_units("vqav2", _units("vqav2", monkeypatch), bootstrap=50)
    assert set(vqa["ci95"]) == {"accuracy", "per_answer_type", "per_question_type"}
    assert set(vqa["ci95"]["per_answer_type"]) == {"yes/no", "number", "other"}


def test_width_matches_the_normal_approximation_on_a_large_set():
    rng = np.random.default_rng(0)
    n, p = 20000, 0.3
    right = rng.random(n) < p
    units = [{"id": i, "accuracy": float(r), "answer_type": "other", "question_type": "what"} for i, r in enumerate(right)]
    result = score_units("vqav2", units, bootstrap=1000, seed=0)
    low, high = result["ci95"]["accuracy"]
    share = right.mean()
    normal_width = 2 * 1.959964 * 100 * np.sqrt(share * (1 - share) / n)
    assert abs((high - low) / normal_width - 1) < 0.10
    assert low < result["accuracy"] < high


def test_mme_keeps_an_images_two_questions_together(tmp_path):
    # Each image has exactly one question right: acc 50, acc+ 0 in every resample, whichever images it draws.
    lines = [f"img{i}.jpg\tQ{j}\t{'Yes' if j == 0 else 'No'}\t{'yes' if i % 2 else 'no'}\n"
             for i in range(20) for j in range(2)]
    for name in ("existence", "count"):
        (tmp_path / f"{name}.txt").write_text("".join(lines))
    with pytest.warns(UserWarning):
        result = metrics.score_mme(tmp_path, bootstrap=100)
    assert result["ci95"]["subtasks"] == {"existence": [50.0, 50.0], "count": [50.0, 50.0]}
    assert result["ci95"]["perception"] == [100.0, 100.0] and result["ci95"]["cognition"] == [0.0, 0.0]


def test_interval_and_paired_difference_helpers():
    assert percentile_interval(np.arange(101.0)) == pytest.approx([2.5, 97.5])
    assert percentile_interval(np.full(10, 5.0), point=7.0) == [5.0, 7.0]  # widened to the point
    assert percentile_interval(np.array([np.nan])) is None
    same = paired_difference(np.arange(10.0), np.arange(10.0), 3.0, 3.0)
    assert same == {"a": 3.0, "b": 3.0, "difference": 0.0, "ci95": [0.0, 0.0], "p_value": 1.0}
    better = paired_difference(np.zeros(999), np.ones(999), 0.0, 1.0)
    assert better["p_value"] == 2 / 1000 and better["ci95"] == [1.0, 1.0]


def test_score_json_has_ci95_and_bootstrap_0_turns_it_off(capsys):
    argv = ["score", "pope", "--annotations", str(FIX / "pope"), "--predictions", str(FIX / "pope" / "predictions.jsonl"),
            "--json", "--bootstrap", "100"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    low, high = result["ci95"]["mean_f1"]
    assert low < result["mean_f1"] == 72.37992529918331 < high
    assert main(argv[:-2] + ["--bootstrap", "0"]) == 0
    assert "ci95" not in json.loads(capsys.readouterr().out)
    assert main(["score", "mme", "--results-dir", str(FIX / "mme" / "case1"), "--bootstrap", "100"]) == 0
    table = capsys.readouterr().out
    assert "perception                  963.61  [" in table and "95% bootstrap intervals" in table
    assert main(argv[:-2] + ["--bootstrap", "-1"]) == 2
    assert capsys.readouterr().err.startswith("lntune: error: --bootstrap must be 0")

