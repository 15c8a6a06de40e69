"""LayerNorm gradient statistics: hand-computed summaries of a synthetic grads.jsonl, the real file the
training loop writes, the plot, the errors and the `lntune analyze gradients` command."""

import json

import pytest
from PIL import Image

from lntune.analysis import compare_summaries, gradient_summary, plot_gradients
from lntune.analysis.gradients import read_series
from lntune.cli import main
from lntune.errors import LntuneError


def _row(step, layer, norm, mean, std, q25, q75):
    return {"step": step, "layer": layer, "norm": norm, "mean": mean, "std": std, "min": -9.0, "max": 9.0,
            "quantiles": [-8.0, q25, mean, q75, 8.0], "hist": {"min": -9.0, "max": 9.0, "counts": [0] * 21}}


def write_run(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grads.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture
def runs(tmp_path):
    ln = [_row(1, 11, "input_layernorm", 0.0, 0.25, -0.5, 0.5),
          _row(2, 11, "input_layernorm", 99.0, 99.0, -99.0, 99.0),  # replaced below: a resumed run re-records step 2
          _row(1, 21, "post_attention_layernorm", 1.0, 0.5, 0.0, 1.0),
          _row(2, 11, "input_layernorm", 2.0, 0.5, 0.0, 2.0),
          _row(3, 11, "input_layernorm", 4.0, 0.75, 1.0, 4.0),
          _row(4, 11, "input_layernorm", 6.0, 0.5, 5.0, 7.0),
          _row(2, 21, "post_attention_layernorm", 3.0, 1.5, 0.0, 3.0)]
    ft = [_row(s, 11, "input_layernorm", 0.0, 1.0, -1.0, 1.0) for s in (1, 2, 3, 4)]
    ft += [_row(1, 21, "post_attention_layernorm", 1.0, 2.0, 0.0, 1.0),
           _row(2, 21, "post_attention_layernorm", 5.0, 2.0, 0.0, 1.0)]
    return write_run(tmp_path / "ln", ln), write_run(tmp_path / "ft", ft)


def test_summary_equals_hand_computed_numbers(runs):
    summary = gradient_summary(runs[0])
    assert summary["run"] == str(runs[0])
    assert summary["entries"] == [
        # means 0,2,4,6: mean 3, population variance (9+1+1+9)/4 = 5; stds .25,.5,.75,.5; IQRs 1,2,3,2
        {"layer": 11, "norm": "input_layernorm", "steps": 4, "first_step": 1, "last_step": 4,
         "mean_of_std": 0.5, "var_of_mean": 5.0, "mean_of_mean": 3.0, "mean_iqr": 2.0},
        # means 1,3: variance 1; stds .5,1.5; IQRs 1,3
        {"layer": 21, "norm": "post_attention_layernorm", "steps": 2, "first_step": 1, "last_step": 2,
         "mean_of_std": 1.0, "var_of_mean": 1.0, "mean_of_mean": 2.0, "mean_iqr": 2.0},
    ]


def test_ratios_against_a_baseline(runs):
    ratios = compare_summaries(gradient_summary(runs[0]), gradient_summary(runs[1]))
    assert ratios == [
        {"layer": 11, "norm": "input_layernorm", "mean_of_std_ratio": 0.5, "var_of_mean_ratio": None},  # baseline 0
        {"layer": 21, "norm": "post_attention_layernorm", "mean_of_std_ratio": 0.5, "var_of_mean_ratio": 0.25},
    ]


def test_layers_filter_and_unknown_layer(runs):
    assert [e["layer"] for e in gradient_summary(runs[0], layers=[21])["entries"]] == [21]
    with pytest.raises(LntuneError, match=r"layer 5 was not tracked; tracked layers: 11, 21"):
        gradient_summary(runs[0], layers=[5])


def test_missing_file_says_how_to_record(tmp_path):
    with pytest.raises(LntuneError, match=r"grads.jsonl: not found.*train.track_grads"):
        gradient_summary(tmp_path)


def test_bad_line_is_named(tmp_path):
    (tmp_path / "grads.jsonl").write_text(json.dumps(_row(1, 0, "input_layernorm", 0, 1, 0, 1)) + "\n{oops\n")
    with pytest.raises(LntuneError, match=r"grads.jsonl:2:2: malformed JSON in gradient statistics"):
        read_series(tmp_path)
    (tmp_path / "grads.jsonl").write_text(json.dumps({"step": 1, "layer": 0, "norm": "x", "mean": 0}) + "\n")
    with pytest.raises(LntuneError, match=r"grads.jsonl:1: missing key 'std'"):
        read_series(tmp_path)


def test_plot_has_one_panel_per_layer_and_norm(runs, tmp_path):
    one = plot_gradients({"ln": runs[0]}, tmp_path / "one.png", layers=[11])
    grid = plot_gradients({"ln": runs[0], "ft": runs[1]}, tmp_path / "grid.png")
    with Image.open(one) as a, Image.open(grid) as b:
        assert b.width > a.width and b.height > a.height  # 2 layers x 2 norms against 1 x 1


def test_cli_json_shape_files_and_table(runs, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["analyze", "gradients", str(runs[0]), "--compare", str(runs[1]), "--layers", "21",
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"runs", "ratios"} and list(result["runs"]) == ["ln", "ft"]
    assert [e["layer"] for e in result["runs"]["ft"]["entries"]] == [21]
    assert result["ratios"] == [{"layer": 21, "norm": "post_attention_layernorm",
                                 "mean_of_std_ratio": 0.5, "var_of_mean_ratio": 0.25}]
    assert json.loads((out / "gradients.json").read_text()) == result
    assert (out / "gradients.png").stat().st_size > 0

    assert main(["analyze", "gradients", str(runs[0])]) == 0
    table = capsys.readouterr().out
    assert "ln" in table and "5.0000e+00" in table and "ratio" not in table


def test_cli_missing_file_is_one_line_exit_2(tmp_path, capsys):
    assert main(["analyze", "gradients", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lntune: error: ") and "train.track_grads" in err
    assert main(["analyze", "gradients", str(tmp_path), "--layers", "1,x"]) == 2
    assert "--layers '1,x'" in capsys.readouterr().err


def test_reads_what_the_training_loop_writes(tmp_path):
    from lntune.config import load_config
    from lntune.train.loop import train
    from tiny_models import make_tiny_run_inputs

    data = make_tiny_run_inputs(tmp_path / "inputs", samples=8)
    data["output_dir"] = str(tmp_path / "run")
    data["train"].update(max_steps=2, track_grads=[1])
    run = train(load_config(data=data))
    summary = gradient_summary(run)
    assert [(e["layer"], e["norm"], e["steps"], e["last_step"]) for e in summary["entries"]] == [
        (1, "input_layernorm", 2, 2), (1, "post_attention_layernorm", 2, 2)]
    assert all(e["mean_of_std"] > 0 for e in summary["entries"])
