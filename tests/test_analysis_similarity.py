"""Layer similarity: the pure math on a hand-built tensor, then a tiny LLaVA model (agreement with HF's
hidden states, padding and batching invariance, the result's shape), the heatmap and the CLI."""

import json
import math

import pytest
import torch
from PIL import Image

from lntune.analysis import layer_similarity, plot_similarity
from lntune.analysis.similarity import cosine_similarity_matrices, decoder_layers, mean_offdiag, sample_similarity
from lntune.cli import main
from lntune.data.collate import LlavaCollator
from lntune.data.dataset import LlavaDataset
from lntune.errors import LntuneError
from tiny_models import make_tiny_run_inputs

R2 = math.sqrt(2.0)


def hand_built():
    """3 layers, 2 samples of 2 positions, 2 dims; the second sample's last position is padding (junk)."""
    hidden = torch.tensor([
        [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [5.0, 5.0]]],   # layer 0: sample 0, sample 1
        [[[1.0, 1.0], [0.0, 2.0]], [[-1.0, 0.0], [1.0, -7.0]]],  # layer 1
        [[[0.0, 3.0], [-1.0, 0.0]], [[3.0, 4.0], [0.0, 1.0]]],   # layer 2
    ])
    mask = torch.tensor([[1, 1], [1, 0]])
    return hidden, mask


def test_per_sample_matrices_by_hand():
    hidden, mask = hand_built()
    got = cosine_similarity_matrices(hidden, mask)
    # sample 0: cos per position, averaged over its 2 positions; sample 1: its single real position
    s0 = torch.tensor([[1.0, (1 / R2 + 1) / 2, 0.0], [(1 / R2 + 1) / 2, 1.0, 1 / (2 * R2)], [0.0, 1 / (2 * R2), 1.0]])
    s1 = torch.tensor([[1.0, -1.0, 0.6], [-1.0, 1.0, -0.6], [0.6, -0.6, 1.0]])
    torch.testing.assert_close(got, torch.stack([s0, s1]), rtol=0, atol=1e-6)


def test_mean_offdiag_averages_samples_then_pairs():
    hidden, mask = hand_built()
    matrix = cosine_similarity_matrices(hidden, mask).mean(0)
    # pairs (0,1), (0,2), (1,2), each the mean of the two samples' values
    expected = (((1 / R2 + 1) / 2 - 1.0) / 2 + 0.6 / 2 + (1 / (2 * R2) - 0.6) / 2) / 3
    assert mean_offdiag(matrix) == pytest.approx(expected, abs=1e-7)
    assert mean_offdiag([[1.0, 0.2, 0.4], [0.2, 1.0, 0.6], [0.4, 0.6, 1.0]]) == pytest.approx(0.4, abs=1e-15)


def test_a_sample_without_tokens_is_an_error():
    hidden, _ = hand_built()
    with pytest.raises(ValueError, match="no unmasked position"):
        cosine_similarity_matrices(hidden, torch.tensor([[1, 1], [0, 0]]))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from lntune.model import build_mllm, save_mllm

    root = tmp_path_factory.mktemp("similarity")
    inputs = make_tiny_run_inputs(root, samples=8)
    model, processor = build_mllm(inputs["model"]["llm"], inputs["model"]["vision"])
    model.eval()
    hf_dir = save_mllm(model, processor, root / "hf")
    return {"model": model, "processor": processor, "data": inputs["data"]["path"],
            "images": inputs["data"]["image_folder"], "hf_dir": hf_dir, "root": root}


def test_block_outputs_agree_with_hf_hidden_states(tiny):
    model, processor = tiny["model"], tiny["processor"]
    dataset = LlavaDataset(tiny["data"], tiny["images"], processor)
    batch = LlavaCollator(processor.tokenizer.pad_token_id)([dataset[0]])
    ours = sample_similarity(model, batch)[0]
    with torch.no_grad():
        hidden = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")},
                       output_hidden_states=True).hidden_states
    # HF: (embeddings, block 0 output, final_norm(block 1 output)); the fresh final norm has unit weights,
    # so it rescales each position and leaves cosines unchanged
    assert len(hidden) == 3 and bool((model.model.language_model.norm.weight == 1).all())
    cos = torch.nn.functional.cosine_similarity(hidden[1][0], hidden[2][0], dim=-1).mean()
    assert len(decoder_layers(model)) == 2
    assert float(ours[0, 1]) == pytest.approx(float(cos), abs=1e-5)


def test_padding_does_not_change_a_sample(tiny):
    processor = tiny["processor"]
    dataset = LlavaDataset(tiny["data"], tiny["images"], processor)
    short, long = dataset[0], dataset[1]  # odd samples have a second turn
    assert len(long["input_ids"]) > len(short["input_ids"])
    collate = LlavaCollator(processor.tokenizer.pad_token_id)
    alone = sample_similarity(tiny["model"], collate([short]))[0]
    padded = sample_similarity(tiny["model"], collate([long, short]))[1]
    torch.testing.assert_close(padded, alone, rtol=0, atol=1e-5)


def test_result_shape_symmetry_and_batching(tiny):
    args = (tiny["model"], tiny["processor"], tiny["data"], tiny["images"])
    one = layer_similarity(*args, samples=5, seed=3, batch_size=1, progress=False)
    five = layer_similarity(*args, samples=5, seed=3, batch_size=5, progress=False)
    assert set(one) == {"matrix", "mean_offdiag", "layers", "samples", "tokens"}
    assert (one["layers"], one["samples"]) == (2, 5) and one["tokens"] == five["tokens"]
    matrix = torch.tensor(one["matrix"], dtype=torch.float64)
    assert matrix.shape == (2, 2)
    torch.testing.assert_close(matrix, matrix.T, rtol=0, atol=0)
    torch.testing.assert_close(matrix.diagonal(), torch.ones(2, dtype=matrix.dtype), rtol=0, atol=1e-6)
    assert one["mean_offdiag"] == matrix[0, 1].item()
    torch.testing.assert_close(torch.tensor(five["matrix"], dtype=torch.float64), matrix, rtol=0, atol=1e-5)
    # seeded: the same 5 samples again, a different subset with another seed
    assert layer_similarity(*args, samples=5, seed=3, batch_size=2, progress=False)["tokens"] == one["tokens"]
    every = layer_similarity(*args, samples=8, batch_size=8, progress=False)
    assert every["samples"] == 8 and every["tokens"] == sum(LlavaDataset(tiny["data"], tiny["images"],
                                                                         tiny["processor"]).lengths)


def test_bf16_model_with_fp32_trained_norms_runs(tiny):
    from lntune.model import load_mllm
    from lntune.strategies import StrategySpec, apply_strategy

    model, processor = load_mllm(tiny["hf_dir"], dtype=torch.bfloat16)
    apply_strategy(model, StrategySpec("layernorm"))  # as a loaded run: trained tensors in fp32, the rest bf16
    assert model.model.language_model.layers[0].input_layernorm.weight.dtype == torch.float32
    args = (tiny["data"], tiny["images"])
    mixed = layer_similarity(model, processor, *args, samples=2, progress=False)
    full = layer_similarity(tiny["model"], tiny["processor"], *args, samples=2, progress=False)
    assert mixed["mean_offdiag"] == pytest.approx(full["mean_offdiag"], abs=2e-2)


def test_heatmaps_side_by_side(tmp_path):
    result = {"matrix": [[1.0, 0.5, 0.2], [0.5, 1.0, 0.4], [0.2, 0.4, 1.0]], "mean_offdiag": 0.366,
              "layers": 3, "samples": 1, "tokens": 4}
    one = plot_similarity({"a": result}, tmp_path / "one.png")
    two = plot_similarity({"a": result, "b": result}, tmp_path / "two.png")
    with Image.open(one) as a, Image.open(two) as b:
        assert b.width > 1.6 * a.width and b.height == pytest.approx(a.height, abs=20)


def test_cli_json_files_and_comparison(tiny, tmp_path, capsys):
    from lntune.model import load_mllm, save_mllm

    other, processor = load_mllm(tiny["hf_dir"])
    with torch.no_grad():
        other.model.language_model.layers[1].input_layernorm.weight.mul_(-3.0)
    other_dir = save_mllm(other, processor, tmp_path / "other")
    out = tmp_path / "out"
    common = ["--data", tiny["data"], "--images", tiny["images"], "--samples", "3", "--batch-size", "2"]
    assert main(["analyze", "similarity", "--model", str(tiny["hf_dir"]), "--compare", str(other_dir), *common,
                 "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"models", "data", "seed", "change_vs_compare"} and list(result["models"]) == ["hf", "other"]
    first, second = (result["models"][n] for n in ("hf", "other"))
    assert first["samples"] == second["samples"] == 3 and first["layers"] == 2
    assert first["mean_offdiag"] != pytest.approx(second["mean_offdiag"], abs=1e-4)
    assert result["change_vs_compare"] == (first["mean_offdiag"] - second["mean_offdiag"]) / second["mean_offdiag"]
    assert json.loads((out / "similarity.json").read_text()) == result
    assert (out / "similarity.png").stat().st_size > 0

    assert main(["analyze", "similarity", "--model", str(tiny["hf_dir"]), *common]) == 0
    assert f"hf: mean layer similarity {first['mean_offdiag']:.4f} (2 layers, 3 samples" in capsys.readouterr().out


def test_cli_errors(tiny, tmp_path, capsys):
    assert main(["analyze", "similarity", "--model", str(tiny["hf_dir"]), "--data", str(tmp_path / "no.json")]) == 2
    assert "no.json: no such file" in capsys.readouterr().err
    with pytest.raises(LntuneError, match="samples and batch_size must be positive"):
        layer_similarity(tiny["model"], tiny["processor"], tiny["data"], tiny["images"], samples=0)
