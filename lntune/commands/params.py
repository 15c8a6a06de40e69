"""`lntune params`: trainable parameters and % of total for every strategy.

    lntune params --preset llava-llama2-7b --lora-r 64      # the paper's Table 2 #param column (seconds, no weights)
    lntune params --model runs/stage1 --json
    lntune params --preset llava-llama2-7b --lora-r 64 --memory   # predicted peak training memory (Table 2's setting)

--memory predicts each strategy's peak training memory from shapes (lntune/memory_model.py): for a preset,
in the paper's Table 2 setting unless options change it; for --model, lntune's own (fp32, no checkpointing).
"""

import json


def register(subparsers):
    parser = subparsers.add_parser("params", help="trainable parameters and %% of total for every strategy")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="an HF LLaVA directory or an lntune run directory")
    source.add_argument("--preset", help="a named model built on the meta device: llava-llama2-7b, llava-llama2-13b, llava-vicuna-7b")
    parser.add_argument("--lora-r", type=int, default=32, help="LoRA rank (paper text: 32; its Table 2 matches 64)")
    parser.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default 2·r; does not change counts)")
    parser.add_argument("--include-final-norm", action="store_true", help="also count the LLM's final norm as trainable")
    parser.add_argument("--json", action="store_true", help="print JSON")
    memory = parser.add_argument_group("training memory (--memory)")
    memory.add_argument("--memory", action="store_true", help="predict each strategy's peak training memory instead")
    memory.add_argument("--batch-size", type=int, default=None, help="samples per micro-batch (preset default 4)")
    memory.add_argument("--seq-len", type=int, default=None, help="padded tokens per sample, image tokens included "
                                                                  "(preset default 657: BOS + 256 image + 400 text)")
    memory.add_argument("--supervised", type=int, default=None, help="supervised tokens per sample (default 200, "
                                                                     "at most --seq-len)")
    memory.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                        help="frozen weights' dtype (preset default bfloat16, else float32)")
    memory.add_argument("--gradient-checkpointing", choices=("on", "off"), default=None,
                        help="per decoder block (preset default on)")
    memory.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    memory.add_argument("--framework", choices=("lntune", "deepspeed"), default=None,
                        help="who holds master weights and optimizer states (preset default deepspeed)")
    memory.add_argument("--zero-stage", type=int, choices=(0, 1, 2, 3), default=2, help="DeepSpeed ZeRO stage (default 2)")
    memory.add_argument("--world-size", type=int, default=1, help="processes ZeRO partitions over (default 1)")
    memory.add_argument("--loss", choices=("lntune", "full-logits"), default=None,
                        help="lntune's head on supervised rows, or the full logits of HF/LLaVA (preset default)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from lntune.accounting import meta_model, preset_config, strategy_table
    from lntune.strategies import LoraOptions

    lora = LoraOptions(r=args.lora_r, alpha=args.lora_alpha or 2 * args.lora_r)
    if args.memory:
        from lntune.memory_report import run_memory

        return run_memory(args, lora)
    if args.preset:
        config = preset_config(args.preset)
        table = strategy_table(lambda: meta_model(config), args.preset, lora, include_final_norm=args.include_final_norm)
    else:
        factory = _model_factory(args.model)
        table = strategy_table(factory, args.model, lora, include_final_norm=args.include_final_norm)
    if args.json:
        print(json.dumps(_public(table), indent=2))
    else:
        print(format_table(table, lora.r))
    return 0


def _model_factory(path):
    """Models for counting: HF directories on the meta device (no weights); run directories loaded for real."""
    from pathlib import Path

    from lntune.model.load import load_mllm
    from lntune.run_dir import RunDir

    path = Path(path)
    if RunDir(path).is_run:
        return lambda: load_mllm(path)[0]
    from transformers import AutoConfig

    from lntune.accounting import meta_model

    config = AutoConfig.from_pretrained(path)
    return lambda: meta_model(config)


def _public(table: dict) -> dict:
    return {
        "model": table["model"],
        "total": table["total"],
        "strategies": {
            name: {"trainable": row["trainable"], "percent": row["percent"], "total": row["total"]}
            for name, row in table["strategies"].items()
        },
    }


def format_table(table: dict, lora_r: int) -> str:
    lines = [f"model: {table['model']}   total parameters: {table['total']:,} (vision tower included)", "",
             f"{'strategy':<18}{'trainable':>16}{'% of total':>12}"]
    for name, row in table["strategies"].items():
        label = f"lora (r={lora_r})" if name == "lora" else name
        lines.append(f"{label:<18}{row['trainable']:>16,}{_percent(row['percent']):>12}")
    lines.append("")
    lines.append("LoRA's total includes its adapters. The paper's Table 2 LoRA row matches --lora-r 64.")
    return "\n".join(lines)


def _percent(value: float) -> str:
    return f"{value:.3f}%" if value < 0.1 else f"{value:.2f}%"
