"""The baseline rows of `lntune bench`: what a user would do instead — Hugging Face `Trainer` + peft.

Same model (built by lntune, so the weights and tokenizer are identical), same batches in the same order
(lntune's length-grouped epoch plan, fed to the Trainer as a sequential dataset), same batch size,
optimizer (AdamW, weight decay 0), learning rate, cosine schedule and gradient clipping. The strategy
becomes the peft config a user would write:

    layernorm         LNTuningConfig on the blocks' input/post-attention norms + projector, embed_tokens,
                      lm_head (peft's llava default targets, minus the final norm that lntune leaves frozen)
    layernorm-simple  LNTuningConfig on the blocks' norms only
    lora              LoraConfig(r, alpha, dropout) on the decoder blocks' linear layers, with projector,
                      embed_tokens and lm_head in modules_to_save

The loss is the model's own (logits for every position). Runs inside the bench worker's process:

    python -m lntune.bench.worker JOB.json ROW.json     # JOB["impl"] == "hf-peft"
"""

from __future__ import annotations

import tempfile
import time

import torch

from lntune.bench.flops import strategy_weight_groups
from lntune.bench.inputs import build, full_batches, image_token_counts, run_config, synthetic_batches
from lntune.bench.measure import PeakMemory, batch_counts, stamp, summarize
from lntune.errors import LntuneError

BASELINE_STRATEGIES = ("layernorm", "layernorm-simple", "lora")
_BASE_SET = ["multi_modal_projector", "embed_tokens", "lm_head"]
_NORMS = ["input_layernorm", "post_attention_layernorm"]


def peft_config(model, strategy: str, lora: dict):
    """The peft config a user would write for `strategy` on this LLaVA model."""
    from peft import LNTuningConfig, LoraConfig

    if strategy == "layernorm":
        return LNTuningConfig(target_modules=_NORMS + _BASE_SET)
    if strategy == "layernorm-simple":
        return LNTuningConfig(target_modules=list(_NORMS))
    if strategy == "lora":
        from lntune.strategies import decoder_linear_modules

        return LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                          target_modules=decoder_linear_modules(model), modules_to_save=list(_BASE_SET), bias="none")
    raise LntuneError(f"no HF Trainer + peft baseline for strategy {strategy!r}; baselines: {', '.join(BASELINE_STRATEGIES)}")


class _ItemList(torch.utils.data.Dataset):
    """Samples in a fixed order (the epoch plan flattened), for a Trainer that reads them sequentially."""

    def __init__(self, get, order):
        self.get, self.order = get, list(order)

    def __len__(self):
        return len(self.order)

    def __getitem__(self, i):
        return self.get(self.order[i])


def _dataset_and_collator(recipe, config, processor, steps):
    """(sequential dataset, collator) yielding exactly the batches the lntune row trains on."""
    from lntune.data.collate import LlavaCollator
    from lntune.data.dataset import build_dataset

    if recipe["kind"] == "random":
        items = [{k: v[i] for k, v in batch.items()} for batch in synthetic_batches(recipe, steps)
                 for i in range(recipe["batch_size"])]
        return _ItemList(items.__getitem__, range(len(items))), LlavaCollator(0)
    dataset = build_dataset(config.data, processor, config.train.seed)
    order = [i for b in full_batches(dataset, config, steps) for i in b]
    return _ItemList(dataset.__getitem__, order), LlavaCollator(processor.tokenizer.pad_token_id)


def run_hf_row(job: dict) -> dict:
    from accelerate.utils import set_seed
    from peft import get_peft_model
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from lntune.train.loop import strategy_spec

    recipe, steps = job["recipe"], job["warmup"] + job["steps"]
    config = run_config(recipe, job["strategy"])
    t = config.train
    set_seed(t.seed)
    started = time.perf_counter()
    model, processor = build(recipe, config)
    image_tokens, vision_tokens = image_token_counts(model, processor)
    groups = strategy_weight_groups(model.config, strategy_spec(config))  # the strategy's floor, as the lntune row's
    model.requires_grad_(False)
    model = get_peft_model(model, peft_config(model, job["strategy"], recipe["lora"]))
    build_s = time.perf_counter() - started
    dataset, collate = _dataset_and_collator(recipe, config, processor, steps)
    counts = []

    def counting_collate(items):
        batch = collate(items)
        counts.append(batch_counts(batch))
        return batch

    cuda = recipe["device"] == "cuda"
    peak = PeakMemory(recipe["device"])
    ends = []

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            peak.reset()
            ends.append(stamp(recipe["device"]))

        def on_step_end(self, args, state, control, **kwargs):
            ends.append(stamp(recipe["device"]))

    with tempfile.TemporaryDirectory(prefix="lntune-bench-hf-") as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=t.batch_size, max_steps=steps, learning_rate=t.lr,
            weight_decay=t.weight_decay, lr_scheduler_type="cosine", warmup_steps=1, max_grad_norm=t.max_grad_norm,
            train_sampling_strategy="sequential", dataloader_num_workers=0, remove_unused_columns=False,
            logging_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True, seed=t.seed,
            use_cpu=not cuda, bf16=t.mixed_precision == "bf16", tf32=cuda and t.tf32 or None,
            gradient_checkpointing=t.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None)
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=counting_collate,
                          callbacks=[Clock()])
        result = trainer.train()
    return summarize(job, ends, counts[:steps], groups, image_tokens, vision_tokens, peak, model,
                            {"build_s": build_s, "loss_mean": result.training_loss, "device": recipe["device"],
                             "threads": torch.get_num_threads()})
