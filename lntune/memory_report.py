"""`lntune params --memory`: the setup from its options, and the table of each strategy's predicted peak training
memory (lntune/memory_model.py).
    lntune params --preset llava-llama2-7b --lora-r 64 --memory          # the paper's Table 2 setting
    lntune params --preset llava-llama2-13b --memory --batch-size 16 --zero-stage 3 --world-size 4
    lntune params --model runs/stage1 --memory --batch-size 8 --seq-len 200 --supervised 50
"""

import json
from dataclasses import asdict

from lntune.errors import LntuneError

GB = 1e9


def run_memory(args, lora) -> int:
    from lntune.memory_model import PAPER_BATCH, Setup, predict_strategies

    preset = bool(args.preset)
    batch = args.batch_size or (PAPER_BATCH["batch_size"] if preset else 8)
    seq_len = args.seq_len or (1 + PAPER_BATCH["image_tokens"] + PAPER_BATCH["text_tokens"] if preset else 256)
    supervised = PAPER_BATCH["supervised_per_sample"] if args.supervised is None else args.supervised
    if min(batch, seq_len) < 1 or not 0 <= supervised <= seq_len:
        raise LntuneError(f"--batch-size and --seq-len must be >= 1 and --supervised in [0, --seq-len] "
                          f"(got {batch}, {seq_len}, {supervised})")
    checkpointing = args.gradient_checkpointing == "on" if args.gradient_checkpointing else preset
    setup = Setup(batch_size=batch, seq_len=seq_len, supervised=batch * supervised,
                  weight_dtype=args.dtype or ("bfloat16" if preset else "float32"), gradient_checkpointing=checkpointing,
                  optimizer=args.optimizer, framework=args.framework or ("deepspeed" if preset else "lntune"),
                  zero_stage=args.zero_stage, world_size=args.world_size,
                  loss=args.loss or ("full-logits" if preset else "lntune"), padding=not preset)
    config = _config(args)
    predictions = predict_strategies(config, setup, lora_r=lora.r, lora_dropout=lora.dropout,
                                     include_final_norm=args.include_final_norm)
    if args.json:
        print(json.dumps({"model": args.preset or args.model, "setup": asdict(setup), "lora_r": lora.r,
                          "strategies": {n: p.to_dict() for n, p in predictions.items()}}, indent=2))
    else:
        print(format_memory(args.preset or args.model, setup, predictions, lora.r))
    return 0


def _config(args):
    if args.preset:
        from lntune.accounting import preset_config

        return preset_config(args.preset)
    from pathlib import Path

    from transformers import AutoConfig

    from lntune.run_dir import RunDir

    path = Path(args.model)
    if RunDir(path).is_run:
        from lntune.model.load import load_mllm

        return load_mllm(path)[0].config
    return AutoConfig.from_pretrained(path)


def format_memory(label: str, setup, predictions: dict, lora_r: int) -> str:
    s = setup
    from lntune.memory_model import AFTER_BACKWARD

    lines = [f"model: {label}   predicted peak training memory per process (GB = 1e9 bytes)",
             f"batch {s.batch_size} x {s.seq_len} tokens ({s.supervised} supervised), {s.weight_dtype} weights, "
             f"gradient checkpointing {'on' if s.gradient_checkpointing else 'off'}, {s.optimizer}, {s.framework}"
             + (f" ZeRO-{s.zero_stage} over {s.world_size}" if s.framework == "deepspeed" else "") + f", {s.loss} loss", "",
             f"{'strategy':<18}{'weights':>9}{'grads':>8}{'optim':>8}{'activ':>8}{'work':>8}{'peak':>8}  peak at"]
    for name, p in predictions.items():
        label_ = f"lora (r={lora_r})" if name == "lora" else name
        step = p.moment in AFTER_BACKWARD
        parts = (p.weights, p.gradients, p.optimizer, p.activations, p.working + (0 if step else p.early_gradients), p.peak)
        lines.append(f"{label_:<18}" + "".join(f"{v / GB:>{w}.1f}" for v, w in zip(parts, (9, 8, 8, 8, 8, 8)))
                     + f"  {p.moment}")
    lines += ["", "peak = weights + optim + activ + work at the end of the forward pass or in the backward pass,",
              "       weights + optim + grads + work at the end of the backward pass or the optimizer step.",
              "Not counted: the CUDA context, allocator caching and fragmentation, communication buffers."]
    return "\n".join(lines)
