"""The training-memory model (lntune/memory_model.py) against exact arithmetic and a profiled tiny step, and
`lntune params --memory`."""

import json

import pytest
import torch

from lntune.bench.presets import random_config
from lntune.bench.tensor_memory import static_bytes, tensor_peak
from lntune.cli import main
from lntune.memory_model import Setup, Shapes, Trained, paper_table2_gb, predict, predict_model
from lntune.strategies import PAPER_STRATEGIES, LoraOptions, StrategySpec, apply_strategy


def _tiny(strategy: str, seed: int = 0):
    from lntune.model.projector import LntuneLlavaForConditionalGeneration

    torch.manual_seed(seed)
    model = LntuneLlavaForConditionalGeneration(random_config("tiny"))
    apply_strategy(model, StrategySpec(strategy, lora=LoraOptions(r=4, alpha=8, dropout=0.05)))
    return model


def _batch(config, size=2, text=23, pad=5):
    """BOS, the image tokens, `text` tokens; the last sample padded by `pad`; the second half of the text supervised."""
    vision = config.vision_config
    image_tokens = (vision.image_size // vision.patch_size) ** 2
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, config.text_config.vocab_size - 1, (size, 1 + image_tokens + text), generator=g)
    ids[:, 0] = 1
    ids[:, 1:1 + image_tokens] = config.image_token_id
    mask = torch.ones_like(ids)
    mask[-1, -pad:] = 0
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    labels[:, :-text // 2] = -100
    pixels = torch.randn(size, 3, vision.image_size, vision.image_size, generator=g)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "pixel_values": pixels}


def _setup(batch) -> Setup:
    ids = batch["input_ids"]
    return Setup(batch_size=ids.shape[0], seq_len=ids.shape[1], supervised=int((batch["labels"][:, 1:] != -100).sum()),
                 padding=bool((batch["attention_mask"] == 0).any()))


@pytest.mark.parametrize("strategy", PAPER_STRATEGIES)
def test_static_state_is_exact_and_the_peak_within_15_percent_of_a_profiled_step(strategy):
    from lntune.train.loss import SupervisedLoss

    model = _tiny(strategy)
    batch = _batch(model.config)
    wrapper = SupervisedLoss(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)

    def step():
        loss = wrapper(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["pixel_values"], 10.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # AdamW's moments exist from the first step on
    prediction = predict_model(model, _setup(batch), lora_dropout=0.05 if strategy == "lora" else 0.0)
    measured = tensor_peak(step, model, optimizer)
    trainable = sum(p.numel() for p in params)
    assert prediction.optimizer == 8 * trainable + 4 * len(params)  # two moments, a step count per tensor
    assert prediction.gradients == 4 * trainable
    assert measured["static_bytes"] == prediction.weights + prediction.optimizer  # fp32 weights + AdamW moments
    assert measured["end_bytes"] == measured["static_bytes"]  # nothing of the step outlives it
    assert abs(prediction.peak / measured["peak_bytes"] - 1) <= 0.15, (prediction.peak, measured["peak_bytes"])


def test_deepspeed_and_zero_partitioning_are_exact_arithmetic():
    trained = Trained(frozen=1000, trainable=200, norms=True)
    shapes = Shapes.of(random_config("tiny"))
    base = dict(batch_size=1, seq_len=4, supervised=2, weight_dtype="bfloat16", framework="deepspeed", world_size=4)
    stage = {k: predict(shapes, trained, Setup(**base, zero_stage=k)) for k in range(4)}
    assert (stage[0].weights, stage[0].gradients, stage[0].optimizer) == (2 * 1200, 2 * 200, 12 * 200)
    assert (stage[1].weights, stage[1].gradients, stage[1].optimizer) == (2 * 1200, 2 * 200, 12 * 200 // 4)
    assert (stage[2].weights, stage[2].gradients, stage[2].optimizer) == (2 * 1200, 2 * 200 // 4, 12 * 200 // 4)
    assert (stage[3].weights, stage[3].gradients, stage[3].optimizer) == (2 * 1200 // 4, 2 * 200 // 4, 12 * 200 // 4)
    lntune = predict(shapes, trained, Setup(batch_size=1, seq_len=4, supervised=2, weight_dtype="bfloat16"))
    assert (lntune.weights, lntune.gradients, lntune.optimizer) == (2 * 1000 + 4 * 200, 4 * 200, 8 * 200)
    sgd = predict(shapes, trained, Setup(batch_size=1, seq_len=4, supervised=2, optimizer="sgd"))
    assert sgd.optimizer == 0


def test_autocast_copies_of_fp32_trained_linears_count_until_the_backward_pass():
    shapes = Shapes.of(random_config("tiny"))
    setup = Setup(batch_size=1, seq_len=4, supervised=2, weight_dtype="bfloat16", compute_dtype="bfloat16")
    plain = predict(shapes, Trained(frozen=1000, trainable=200), setup)
    cast = predict(shapes, Trained(frozen=1000, trainable=200, trained_linear=150), setup)
    assert cast.early_gradients - plain.early_gradients == 2 * 150
    deepspeed = dict(framework="deepspeed")  # its weights are 16-bit already: nothing to cast
    assert predict(shapes, Trained(frozen=1000, trainable=200, trained_linear=150), Setup(**{**setup.__dict__, **deepspeed})).early_gradients == 0


def test_a_block_keeps_what_the_model_lists():
    shapes = Shapes.of(random_config("tiny"))  # hidden 32, intermediate 64, 4 heads of 8, 2 key/value heads
    setup = Setup(batch_size=1, seq_len=10, supervised=2, padding=False)
    norms_only = predict(shapes, Trained(frozen=1, trainable=1, norms=True), setup).details["block_per_token"]
    # norms' inputs and outputs 4*32, q 32, k and v 2*16 (grouped), attention output 32, SwiGLU 3*64; fp32 scales
    assert norms_only == 4 * (4 * 32 + 32 + 2 * 16 + 32 + 3 * 64) + 4 * (2 + 4)
    lora = predict(shapes, Trained(frozen=1, trainable=1, lora_r=4, lora_dropout=0.05), setup).details["block_per_token"]
    # frozen norms keep their inputs only; adapted inputs q/k/v 32, o 32, gate/up 32, down 64; A's outputs 7*4;
    # a kept-mask byte per adapted input element of each of the 7 modules
    assert lora == 4 * (2 * 32 + 32 + 2 * 16 + 32 + 3 * 64 + 3 * 32 + 64 + 7 * 4) + 4 * (2 + 4) + (6 * 32 + 64)


def test_7b_predictions_keep_the_papers_order_and_out_of_memory_rows():
    gb = paper_table2_gb("llava-llama2-7b")
    assert set(gb) == set(PAPER_STRATEGIES)
    assert gb["layernorm-simple"] < gb["layernorm"] < gb["lora"] < gb["attn-qv"] < 80 < gb["attn-mlp"] < gb["finetune"]


def test_params_memory_cli(tmp_path, capsys):
    from lntune.model.projector import LntuneLlavaForConditionalGeneration

    LntuneLlavaForConditionalGeneration(random_config("tiny")).config.save_pretrained(tmp_path)
    assert main(["params", "--model", str(tmp_path), "--memory", "--batch-size", "2", "--seq-len", "40",
                 "--supervised", "10", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["strategies"]) == set(PAPER_STRATEGIES)
    assert data["setup"]["supervised"] == 20 and data["setup"]["framework"] == "lntune"
    assert all(row["peak"] > row["weights"] for row in data["strategies"].values())
    assert main(["params", "--model", str(tmp_path), "--memory", "--seq-len", "8", "--supervised", "9"]) == 2
    assert "--supervised in [0, --seq-len]" in capsys.readouterr().err
