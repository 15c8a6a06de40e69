"""Evaluations pinned to their model: model B into model A's eval folder is refused (its answers would be reused),
--overwrite starts afresh; the pipeline's read-back of a finished evaluation obeys the same rule."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_helpers import tiny_llava, write_tiny_benchmarks  # noqa: E402

from lntune.cli import main  # noqa: E402
from lntune.errors import LntuneError  # noqa: E402


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("pinning")
    dirs = []
    for name, seed in (("model-a", 0), ("model-b", 1)):
        model, processor = tiny_llava(seed=seed)
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
        dirs.append(root / name)
    return dirs


def _answers(out: Path) -> list[str]:
    return [json.loads(line)["text"] for line in (out / "predictions" / "pope.jsonl").read_text().splitlines()]


def test_model_b_into_model_a_folder_is_refused_and_overwrite_starts_afresh(two_models, tmp_path, capsys):
    a, b = two_models
    data, images = write_tiny_benchmarks(tmp_path)
    out = tmp_path / "results"
    argv = lambda model, *extra: ["eval", "--model", str(model), "--tasks", "pope", "--data-root", str(data),  # noqa
                                  "--image-root", str(images), "--limit", "2", "--max-new-tokens", "3", "--out",
                                  str(out), *extra]
    assert main(argv(a)) == 0
    answers_a = _answers(out)
    capsys.readouterr()
    assert main(argv(b)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"lntune: error: {out}: holds an evaluation of model {a} (weights ")
    assert f"not {b} (weights " in err and "pass --overwrite to start afresh" in err
    assert _answers(out) == answers_a  # nothing of A's was touched

    assert main([*argv(b)[:-1], str(data), "--overwrite"]) == 2  # never into the data root
    assert "holds the benchmark files" in capsys.readouterr().err
    assert main(argv(b, "--overwrite")) == 0
    answers_b = _answers(out)
    assert len(answers_b) == len(answers_a) == 6 and answers_b != answers_a
    assert json.loads((out / "eval_inputs.json").read_text())["model"]["path"] == str(b)
    assert main(argv(b)) == 0 and _answers(out) == answers_b  # the same model resumes as before


def test_retrained_weights_at_the_same_path_and_other_benchmark_files_are_refused(two_models, tmp_path):
    from lntune.eval.pinning import eval_inputs, pin_evaluation, record_pins

    a, _ = two_models
    data, images = write_tiny_benchmarks(tmp_path)
    out = tmp_path / "results"
    record_pins(out, pin_evaluation(out, eval_inputs(a, data, images, ["pope"])))
    (out / "metrics.json").write_text("{}")
    assert pin_evaluation(out, eval_inputs(a, data, images, ["pope", "mme"]))["data"].keys() == {"pope", "mme"}
    labels = data / "pope" / "coco_pope_random.json"
    labels.write_text(labels.read_text() + "\n")
    with pytest.raises(LntuneError, match=r"holds an evaluation of pope on benchmark files in .*/pope that have "
                                          "changed since"):
        pin_evaluation(out, eval_inputs(a, data, images, ["pope"]))
    with pytest.raises(LntuneError, match=r"holds an evaluation of pope with images from "):
        pin_evaluation(out, eval_inputs(a, data, tmp_path, ["mme", "pope"]))


def test_an_unpinned_folder_with_results_is_refused(two_models, tmp_path):
    from lntune.eval.pinning import eval_inputs, pin_evaluation

    out = tmp_path / "results"
    (out / "predictions").mkdir(parents=True)
    (out / "predictions" / "pope.jsonl").write_text("")
    with pytest.raises(LntuneError, match="does not record which model it evaluated; use another output folder, or "
                                          "delete the folder to start afresh"):
        pin_evaluation(out, eval_inputs(two_models[0], tmp_path, None, ["pope"]), how_to_restart="delete the folder")


def test_pipeline_reads_back_only_the_same_model_and_settings(two_models, tmp_path, monkeypatch):
    from lntune import pipeline
    from lntune.eval import runner

    a, b = two_models
    data, images = write_tiny_benchmarks(tmp_path)
    calls = []
    real = runner.evaluate
    monkeypatch.setattr(runner, "evaluate", lambda *args, **kw: calls.append(kw["limit"]) or real(*args, **kw))
    run = lambda model, limit: pipeline.evaluate_run(model, tmp_path / "results", data, tasks=("pope",),  # noqa: E731
                                                     limit=limit, image_root=images, progress=False, max_new_tokens=2)
    first = run(a, 1)
    assert run(a, 1) == first and calls == [1]  # read back
    run(a, 2)
    assert calls == [1, 2]  # other settings: the runner resumes and scores again
    with pytest.raises(LntuneError, match=r"holds an evaluation of model .*model-a .*, not .*model-b .*delete the folder"):
        run(b, 2)
