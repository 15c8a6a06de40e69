"""Export a run as a peft adapter, loadable on its base model with plain transformers + peft.

    lntune export --model runs/stage1 --out base_hf                      # the base, as a full HF checkpoint
    lntune export --model runs/stage2 --format peft --out adapter        # the adapter
    base = LlavaForConditionalGeneration.from_pretrained("base_hf")
    model = PeftModel.from_pretrained(base, "adapter")                   # same logits as the full export

Norm strategies (layernorm, layernorm-simple, ...) become peft's LN-tuning adapter (`LNTuningConfig`):
the trained norms are its target modules, and the projector, word embeddings and output head are listed in
`modules_to_save` when the run trained them. `lora` becomes a LoRA adapter with the run's rank, alpha and
target layers (plus the same `modules_to_save`). Strategies that train other weights (finetune,
attn-qv, attn-mlp) have no adapter form: export them in full. A run built from a recipe (no saved base)
gets its base written too, with `--base-out`.
"""

from __future__ import annotations


from pathlib import Path

from lntune.errors import LntuneError
from lntune.ownership import replace_owned_folder

ADAPTER = "default"
_SAVED_WHOLE = {"multi_modal_projector": "projector", "embed_tokens": "word embeddings", "lm_head": "output head"}


def adapter_plan(model, trained_names, strategy: str) -> tuple[list[str], list[str], list[str]]:
    """(norm modules for LN tuning, LoRA-adapted modules, modules_to_save) from the names of trained tensors."""
    from lntune.strategies import is_norm

    norms, lora, whole = set(), set(), set()
    for name in trained_names:
        module_name = name.rsplit(".", 1)[0]
        saved = next((key for key in _SAVED_WHOLE if f"{key}." in name + "."), None) if "lora_" not in name else None
        if saved:
            whole.add(saved)
        elif ".lora_" in name:
            lora.add(name.split(".lora_")[0])
        elif is_norm(model.get_submodule(module_name)):
            norms.add(module_name)
        else:
            raise LntuneError(f"--format peft: the {strategy} run trained {name}, which neither an LN-tuning nor a "
                              "LoRA adapter holds; export it in full (the default --format hf)")
    head = model.get_output_embeddings()
    if "embed_tokens" in whole and head is not None and head.weight is model.get_input_embeddings().weight:
        whole.add("lm_head")  # tied: saved under the embeddings' name only, but the head must carry the same values
    if norms and lora:
        raise LntuneError("--format peft: the run trained both norms and LoRA adapters; peft holds one adapter type")
    return sorted(norms), sorted(lora), sorted(whole)


def peft_config(norms, lora, whole, lora_options: dict):
    from peft import LNTuningConfig, LoraConfig

    if lora:
        return LoraConfig(r=lora_options["r"], lora_alpha=lora_options["alpha"], lora_dropout=lora_options["dropout"],
                          target_modules=lora, bias="none", modules_to_save=whole or None)
    if not norms:
        raise LntuneError("--format peft: the run trained no norms and no LoRA adapters (a connector-only run is "
                          "its projector: export it in full)")
    return LNTuningConfig(target_modules=norms, modules_to_save=whole or None)


def export_peft(run_dir, out, base_out=None) -> Path:
    """Write the run's adapter to `out` (and its base as a full HF checkpoint to `base_out` when given)."""
    import torch
    from peft import get_peft_model

    from lntune.model.export import EXPORT, merge_lora, to_plain_llava
    from lntune.model.load import load_base, load_mllm, read_run_file, read_tensors, save_mllm
    from lntune.run_dir import RUN_FILE, RunDir

    run_dir, out = Path(run_dir), Path(out)
    if not RunDir(run_dir).is_run:
        raise LntuneError(f"--format peft: {run_dir} is not an lntune run (no {RUN_FILE}); an adapter needs a base")
    meta = read_run_file(run_dir)
    if meta["base"].get("kind") == "build" and base_out is None:
        raise LntuneError(f"--format peft: {run_dir} was built from a recipe, not a saved base model: add "
                          "--base-out DIR to write the base the adapter applies to")
    run_tensors = read_tensors(RunDir(run_dir).trainable_file)
    trained, _ = load_mllm(run_dir)
    norms, lora, whole = adapter_plan(trained, run_tensors, meta["strategy"]["name"])
    merge_lora(trained)
    full = to_plain_llava(trained).state_dict()  # exactly what the full export holds

    base, processor = load_base(meta["base"], relative_to=run_dir)
    base = to_plain_llava(base)
    if base_out is not None:
        save_mllm(base, processor, Path(base_out), kind=EXPORT)
    base.requires_grad_(False)
    peft_model = get_peft_model(base, peft_config(norms, lora, whole, meta["strategy"]["lora"]))
    filled, markers = 0, (f".ln_tuning_layers.{ADAPTER}", f".modules_to_save.{ADAPTER}")
    with torch.no_grad():
        for name, param in peft_model.base_model.model.named_parameters():
            if f".lora_A.{ADAPTER}." in name or f".lora_B.{ADAPTER}." in name:
                source = run_tensors.get(name)
            elif any(m in name for m in markers):
                source = full.get(name.replace(markers[0], "").replace(markers[1], ""))
            else:
                continue
            if source is None:
                raise LntuneError(f"--format peft: no trained value for adapter tensor {name}")
            param.copy_(source.to(param.dtype))
            filled += 1
    if not filled:
        raise LntuneError("--format peft: the adapter holds no tensors")
    return replace_owned_folder(out, EXPORT, peft_model.save_pretrained)
