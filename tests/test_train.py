"""The training loop on tiny models: results, loss, exact resume after SIGKILL, 2 processes = 1, NaN stop, export."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from lntune.config import load_config
from lntune.errors import LntuneError
from lntune.model import load_mllm
from lntune.train.loop import train
from tiny_models import make_tiny_run_inputs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_tiny_run_inputs(tmp_path_factory.mktemp("train"))


def _config(inputs, tmp_path, **train):
    data = json.loads(json.dumps(inputs))
    data["output_dir"] = str(tmp_path / "run")
    data["train"].update(train)
    return load_config(data=data)


def _cli(config_path, *extra, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return [sys.executable, "-m", "lntune.cli", "train", "--config", str(config_path), *extra], env


def test_result_holds_only_what_trained_and_loads_back(inputs, tmp_path):
    out = train(_config(inputs, tmp_path, max_steps=3))
    saved = load_file(str(out / "trainable.safetensors"))
    meta = json.loads((out / "lntune.json").read_text())
    assert meta["strategy"]["name"] == "layernorm" and meta["base"]["kind"] == "build"
    model, _ = load_mllm(out)
    params = dict(model.named_parameters())
    assert set(saved) == {"model.multi_modal_projector.linear_1.weight", "model.multi_modal_projector.linear_1.bias",
                          "model.language_model.embed_tokens.weight", "lm_head.weight",
                          *(f"model.language_model.layers.{i}.{n}.weight" for i in range(2)
                            for n in ("input_layernorm", "post_attention_layernorm"))}
    for name, value in saved.items():
        assert torch.equal(params[name], value), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (out / "loss.png").stat().st_size > 0 and (out / "summary.json").exists()


def test_sparse_head_loss_equals_the_hf_token_mean(inputs):
    from lntune.data.collate import LlavaCollator
    from lntune.data.dataset import LlavaDataset
    from lntune.train.loop import build_model
    from lntune.train.loss import SupervisedLoss, supervised_tokens

    config = load_config(data=inputs)
    model, processor = build_model(config)
    dataset = LlavaDataset(config.data.path, config.data.image_folder, processor)
    batch = LlavaCollator(processor.tokenizer.pad_token_id)([dataset[i] for i in range(4)])
    with torch.no_grad():
        ours = SupervisedLoss(model)(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["pixel_values"],
                                     supervised_tokens(batch["labels"]))
        reference = model(**batch).loss
    assert torch.allclose(ours, reference, rtol=1e-5, atol=1e-6)


def test_sigkill_then_resume_is_bit_identical(inputs, tmp_path):
    base = json.loads(json.dumps(inputs))
    base["train"].update(strategy="lora", lora={"r": 4, "alpha": 8, "dropout": 0.1}, max_steps=10, epochs=2, save_steps=2)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(base))
    cmd, env = _cli(config_path, f"output_dir={tmp_path / 'straight'}")
    subprocess.run(cmd, env=env, check=True, capture_output=True)

    killed = tmp_path / "killed"
    cmd, env = _cli(config_path, f"output_dir={killed}")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (killed / "checkpoint-4").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "checkpoint-4").exists() and not (killed / "trainable.safetensors").exists()
    subprocess.run(_cli(config_path, f"output_dir={killed}", "--resume")[0], env=env, check=True, capture_output=True)

    a = load_file(str(tmp_path / "straight" / "trainable.safetensors"))
    b = load_file(str(killed / "trainable.safetensors"))
    assert a.keys() == b.keys() and any("lora_" in k for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))


def test_two_processes_match_one_with_the_same_global_batch(inputs, tmp_path):
    base = json.loads(json.dumps(inputs))
    base["train"].update(max_steps=4)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(base))
    one, env = _cli(config_path, f"output_dir={tmp_path / 'one'}", "train.batch_size=4")
    subprocess.run(one, env=env, check=True, capture_output=True)
    two, env = _cli(config_path, f"output_dir={tmp_path / 'two'}", "train.batch_size=2")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29631",
                "-m", "lntune.cli", *two[3:]]
    result = subprocess.run(torchrun, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    losses = lambda d: [json.loads(line)["loss"] for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
    assert len(losses("one")) == 4
    assert losses("two") == pytest.approx(losses("one"), rel=1e-5, abs=1e-6)
    a, b = (load_file(str(tmp_path / d / "trainable.safetensors")) for d in ("one", "two"))
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6), key


def test_nan_loss_stops_naming_the_step_and_keeps_the_checkpoint(inputs, tmp_path, monkeypatch):
    from lntune.train import loss as loss_module

    real = loss_module.SupervisedLoss.forward
    calls = {"n": 0}

    def poisoned(self, *args):
        calls["n"] += 1
        value = real(self, *args)
        return value * float("nan") if calls["n"] == 3 else value

    monkeypatch.setattr(loss_module.SupervisedLoss, "forward", poisoned)
    config = _config(inputs, tmp_path, max_steps=6, save_steps=2)
    with pytest.raises(LntuneError, match=r"non-finite loss \(nan\) at step 3: .*checkpoint-2"):
        train(config)
    assert (tmp_path / "run" / "checkpoint-2" / "trainable.safetensors").exists()
    assert not (tmp_path / "run" / "trainable.safetensors").exists()


def test_a_finished_run_is_not_overwritten(inputs, tmp_path):
    train(_config(inputs, tmp_path, max_steps=1))
    with pytest.raises(LntuneError, match="already holds a run: pass --resume"):
        train(_config(inputs, tmp_path, max_steps=1))


def test_lora_run_exports_to_plain_transformers(inputs, tmp_path):
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from lntune.model.export import export_hf

    out = train(_config(inputs, tmp_path, strategy="lora", lora={"r": 4, "alpha": 8, "dropout": 0.0}, max_steps=2))
    model, processor = load_mllm(out)
    export_hf(out, tmp_path / "hf")
    plain = LlavaForConditionalGeneration.from_pretrained(tmp_path / "hf")
    assert not any("lora_" in n for n, _ in plain.named_parameters())
    batch = AutoProcessor.from_pretrained(tmp_path / "hf")(text="<image>\nwhat color", images=Image.new("RGB", (32, 32)),
                                                            return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**batch).logits, plain(**batch).logits, atol=1e-5)


def test_build_dataset_applies_every_data_option(inputs, tmp_path):
    from lntune.data.dataset import build_dataset
    from lntune.train.loop import build_model

    config = _config(inputs, tmp_path)
    _, processor = build_model(config)
    full = build_dataset(config.data, processor, seed=0)
    longest = max(full.lengths)
    assert len(full) == 24 and min(full.lengths) < longest

    def dataset(**options):
        data = json.loads(json.dumps(inputs))
        data["data"].update(options)
        return build_dataset(load_config(data=data).data, processor, seed=0)

    assert len(dataset(max_samples=10)) == 10
    dropped = dataset(max_length=longest - 3)
    cut = dataset(max_length=longest - 3, truncation="text")
    assert len(dropped) < len(full) == len(cut) and max(cut.lengths) == longest - 3
    with pytest.raises(LntuneError, match="data_types: no sample of type 'detail'"):
        dataset(data_types=["detail"])


def test_projector_lr_sets_the_connector_step_and_nothing_else(inputs, tmp_path):
    """AdamW's first step moves every element by about its learning rate: lr for the norms, projector_lr for the
    connector. projector_lr equal to lr is the same run, bit for bit."""
    from lntune.train.loop import build_model

    config = _config(inputs, tmp_path, max_steps=1, warmup_ratio=0.0)
    start = {n: p.detach().clone() for n, p in build_model(config)[0].named_parameters()}

    def moved(run_dir, part):
        saved = load_file(str(Path(run_dir) / "trainable.safetensors"))
        return max(float((v - start[n]).abs().max()) for n, v in saved.items() if part in n)

    plain = train(config)
    same = train(_config(inputs, tmp_path / "same", max_steps=1, warmup_ratio=0.0, projector_lr=1.0e-2))
    slow = train(_config(inputs, tmp_path / "slow", max_steps=1, warmup_ratio=0.0, projector_lr=1.0e-3))
    a, b = load_file(str(plain / "trainable.safetensors")), load_file(str(same / "trainable.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[n], b[n]) for n in a)
    for run, projector_step in ((plain, 1.0e-2), (slow, 1.0e-3)):
        assert moved(run, "multi_modal_projector") == pytest.approx(projector_step, rel=1e-3)
        assert moved(run, "layernorm") == pytest.approx(1.0e-2, rel=1e-3)


def test_projector_lr_must_be_positive(inputs, tmp_path):
    with pytest.raises(LntuneError, match="train.projector_lr"):
        _config(inputs, tmp_path, projector_lr=0.0)


def test_gradient_checkpointing_takes_effect_on_loaded_models(inputs, tmp_path):
    """from_pretrained parts arrive in eval mode, where HF skips checkpointing: the Trainer switches them to
    training mode (the frozen vision tower stays in eval mode) and a block then keeps only its input."""
    from lntune.train.loop import Trainer

    kept = {}
    for checkpointing in (False, True):
        trainer = Trainer(_config(inputs, tmp_path / str(checkpointing), strategy="layernorm",
                                  gradient_checkpointing=checkpointing)).start().build_model()
        language_model = trainer.model.model.language_model
        assert language_model.training and not trainer.model.model.vision_tower.training
        trainer.load_data().prepare()
        batch = next(iter(trainer.loader(trainer.epoch_plan(0)[:1], epoch=0)))
        sizes = {}

        def pack(t, sizes=sizes):
            sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            trainer.wrapper(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["pixel_values"], 1.0)
        kept[checkpointing] = sum(sizes.values())
    assert kept[True] < kept[False]
