"""`lntune compare`: paired bootstrap differences on hand-built evaluations with known differences."""

import json

import pytest

from lntune.cli import main
from lntune.errors import LntuneError
from lntune.eval.compare import compare_eval_dirs, compare_units
from lntune.eval.intervals import score_units, units_path, write_units


def _vqa_units(right: set, n=500):
    return [{"id": i, "accuracy": float(i in right), "answer_type": "yes/no" if i % 2 else "other",
             "question_type": "is the"} for i in range(n)]


def _pope_units(right: set, per_split=100):
    return [{"id": i, "split": split, "label": "yes" if i % 2 else "no",
             "answer": ("yes" if i % 2 else "no") if (split, i) in right else ("no" if i % 2 else "yes")}
            for split in ("random", "popular", "adversarial") for i in range(per_split)]


def _eval_dir(path, tasks: dict):
    """An `lntune eval --out` folder: metrics.json and units/<task>.json for {task: (benchmark, units)}."""
    metrics = {}
    for task, (name, units) in tasks.items():
        write_units(units_path(path, task), name, units)
        metrics[task] = score_units(name, units)
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def test_a_20_point_difference_on_500_questions_is_significant(tmp_path):
    a = _eval_dir(tmp_path / "a", {"vqav2": ("vqav2", _vqa_units(set(range(300))))})          # 60%
    b = _eval_dir(tmp_path / "b", {"vqav2": ("vqav2", _vqa_units(set(range(400))))})          # 80%
    result = compare_eval_dirs(a, b)
    d = result["vqav2"]["accuracy"]
    assert (d["a"], d["b"], d["difference"]) == (60.0, 80.0, 20.0)
    low, high = d["ci95"]
    assert 15 < low < 20 < high < 25  # paired: only the 100 questions B alone gets right vary
    assert d["p_value"] < 0.01
    assert set(result) == {"vqav2"} and set(result["vqav2"]) == {"accuracy"}


def test_identical_predictions_give_difference_0_and_p_1(tmp_path):
    units = {"vqav2": ("vqav2", _vqa_units(set(range(0, 500, 3)))),
             "pope": ("pope", _pope_units({(s, i) for s in ("random", "adversarial") for i in range(70)}))}
    result = compare_eval_dirs(_eval_dir(tmp_path / "a", units), _eval_dir(tmp_path / "b", units))
    assert set(result) == {"vqav2", "pope"} and set(result["pope"]) == {"mean_accuracy", "mean_f1"}
    for metrics in result.values():
        for d in metrics.values():
            assert d["difference"] == 0.0 and d["p_value"] == 1.0 and d["ci95"] == [0.0, 0.0]


def test_a_small_difference_is_not_significant():
    a = _pope_units({(s, i) for s in ("random", "popular", "adversarial") for i in range(70)})
    b = _pope_units({(s, i) for s in ("random", "popular", "adversarial") for i in range(71)})
    d = compare_units("pope", a, b)["mean_accuracy"]
    assert d["difference"] == pytest.approx(1.0)
    assert d["ci95"][0] <= 0 < d["ci95"][1] and d["p_value"] > 0.05


def test_different_question_sets_are_refused(tmp_path, capsys):
    a = _eval_dir(tmp_path / "a", {"vqav2": ("vqav2", _vqa_units(set(range(300))))})
    b = _eval_dir(tmp_path / "b", {"vqav2": ("vqav2", _vqa_units(set(range(300)), n=499))})
    with pytest.raises(LntuneError, match="scored different questions .1 only in A, first: 499"):
        compare_eval_dirs(a, b)
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lntune: error: vqav2: the two evaluations scored different questions") and err.count("\n") == 1
    labels = _pope_units(set())
    relabelled = [dict(u, label="no") for u in labels]
    with pytest.raises(LntuneError, match="other labels or references"):
        compare_units("pope", labels, relabelled)


def test_compare_command_json_contract_and_table(tmp_path, capsys):
    a = _eval_dir(tmp_path / "a", {"vqav2": ("vqav2", _vqa_units(set(range(300))))})
    b = _eval_dir(tmp_path / "b", {"vqav2": ("vqav2", _vqa_units(set(range(400))))})
    assert main(["compare", str(a), str(b), "--json", "--bootstrap", "200"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["vqav2"]["accuracy"]) == {"a", "b", "difference", "ci95", "p_value"}
    assert main(["compare", str(a), str(b), "--bootstrap", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:5] == ["vqav2", "accuracy", "60.00", "80.00", "+20.00"]
    (b / "units" / "vqav2.json").unlink()
    assert main(["compare", str(a), str(b)]) == 2
    assert "re-run the same `lntune eval` command" in capsys.readouterr().err


def test_quickstart_report_shows_intervals_and_the_layernorm_minus_stage1_row(tmp_path):
    from lntune.reporting import write_quickstart_report

    units_a = {"vqav2": _vqa_units(set(range(300))), "pope": _pope_units({("random", i) for i in range(60)})}
    units_b = {"vqav2": _vqa_units(set(range(400))), "pope": _pope_units({("random", i) for i in range(61)})}
    models = {name: {task: score_units(task, units[task], bootstrap=200) for task in units}
              for name, units in (("stage-1 (connector only)", units_a), ("LayerNorm", units_b))}
    comparison = {task: compare_units(task, units_a[task], units_b[task], n_resamples=200) for task in units_a}
    results = {"preset": "smoke", "world": "w", "models": models, "comparison": comparison,
               "chance": {"pope_accuracy": 50.0}, "timings_s": {"total": 1.0}}
    text = write_quickstart_report(results, tmp_path / "report.md")
    vqa_row = next(line for line in text.splitlines() if line.startswith("| VQAv2 acc |"))
    low, high = models["LayerNorm"]["vqav2"]["ci95"]["accuracy"]
    assert f"80.0 [{low:.1f}, {high:.1f}] (+20.0)" in vqa_row
    paired = next(line for line in text.splitlines() if line.startswith("| LayerNorm − stage-1 |"))
    d = comparison["vqav2"]["accuracy"]
    assert paired.split(" | ")[1] == f"+20.0 [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"
    assert "above 0 for: VQAv2 acc;" in text
    assert "| Model | MME (P/C) |" in text and "[low, high]: 95% bootstrap interval" in text


def test_the_compared_metrics_are_the_headline_numbers_grouped_by_benchmark():
    from lntune.eval.compare import HEADLINE_METRICS

    assert HEADLINE_METRICS == {"mme": ("perception", "cognition"), "vqav2": ("accuracy",), "caption": ("CIDEr",),
                                "pope": ("mean_accuracy", "mean_f1")}
