"""`lntune bench`: step time, tokens/s, peak memory, trainable parameters and FLOP floor per strategy.

    lntune bench                                      # embedded default on CPU: lntune vs HF Trainer + peft
    lntune bench --strategies finetune,layernorm-simple --baselines none --json
    lntune bench --preset llava-llama2-7b --random-init            # Table 2's memory column (CUDA only)

Writes bench.json and bench.png to --out; prints a table (or the JSON with --json). Figures and how to
read them: docs/benchmarks.md.
"""

import json

from lntune.errors import LntuneError


def register(subparsers):
    parser = subparsers.add_parser("bench", help="time and memory of one training step per strategy (lntune vs HF Trainer + peft)")
    parser.add_argument("--preset", default="embedded",
                        help="embedded (default: SmolLM2-135M on CPU), tiny, llava-llama2-7b, llava-llama2-13b, llava-vicuna-7b")
    parser.add_argument("--random-init", action="store_true", help="random weights (the paper-size presets; memory does not depend on them)")
    parser.add_argument("--strategies", default=None, help="comma-separated lntune strategies (default: finetune,lora,layernorm,"
                                                           "layernorm-simple; the paper presets: all six of Table 2)")
    parser.add_argument("--baselines", default=None, help="comma-separated strategies to run with HF Trainer + peft, or 'none' "
                                                          "(default: layernorm,lora)")
    parser.add_argument("--variants", default=None, help="extra layernorm-simple rows, comma-separated, or 'none' (default: "
                                                         "feature-cache; none for the paper presets; also: compile): vision features "
                                                         "computed once (a sweep-level saving); decoder blocks under torch.compile")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per row and round (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--rounds", type=int, default=2, help="times each row runs, in alternating order (default 2)")
    parser.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per row (default: torch's choice, or 1 "
                                                                     "when the load average already exceeds the core count)")
    parser.add_argument("--tensor-memory", action="store_true", help="one more step per lntune row under the memory "
                        "profiler: its peak tensor memory beside the memory model's prediction (docs/benchmarks.md)")
    parser.add_argument("--out", default="runs/bench", help="where bench.json and bench.png go (default runs/bench)")
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lntune.bench.runner import (DEFAULT_BASELINES, DEFAULT_VARIANTS, VARIANTS, default_strategies, format_table,
                                     plot_chart, public_json, run_bench)

    strategies = _names(args.strategies, default_strategies(args.preset))
    baselines = _names(args.baselines, DEFAULT_BASELINES)
    from lntune.bench.presets import PAPER_PRESETS

    variants = _names(args.variants, () if args.preset in PAPER_PRESETS else DEFAULT_VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise LntuneError(f"--variants: unknown variant {unknown[0]!r}; variants: {', '.join(VARIANTS)}")
    result = public_json(run_bench(args.preset, strategies, baselines, steps=args.steps, warmup=args.warmup,
                                   rounds=args.rounds, feature_cache="feature-cache" in variants,
                                   compile_variant="compile" in variants,
                                   random_init=args.random_init, tensor_memory=args.tensor_memory,
                                   batch_size=args.batch_size, threads=args.threads))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2))
    plot_chart(result, out / "bench.png")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
        print(f"\nlntune: wrote {out / 'bench.json'} and {out / 'bench.png'}")
    return 0


def _names(text, default):
    if text is None:
        return list(default)
    if text.strip().lower() == "none":
        return []
    return [name.strip() for name in text.split(",") if name.strip()]
