"""`lntune eval`: run the benchmarks (MME, VQAv2, MSCOCO, Flickr30k, POPE) on a model.

    lntune eval --model runs/ln --tasks mme,vqav2,coco,flickr30k,pope --data-root WORLD/eval --out runs/ln/eval
    lntune eval --model runs/ln --tasks pope --data-root data/eval --image-root data/images --protocol paper ...
    lntune eval --model runs/ln --bench-batch 1,8            # questions/s at batch 1 and 8

Re-running the same command after a kill continues where it stopped. The folder is pinned to its model and
data (lntune/eval/pinning.py): another model or other benchmark files into the same --out are refused, and
--overwrite starts afresh. One process at a time writes a folder. Outputs: see lntune/eval/runner.py and
docs/evaluation.md.
"""

from lntune.errors import LntuneError
from lntune.eval.tasks.registry import EVAL_TASKS

ALL_TASKS = ",".join(EVAL_TASKS)


def register(subparsers):
    parser = subparsers.add_parser("eval", help="evaluate a model on MME, VQAv2, COCO, Flickr30k and POPE")
    parser.add_argument("--model", required=True, help="an HF LLaVA directory or an lntune run directory")
    parser.add_argument("--tasks", default=ALL_TASKS, help=f"comma-separated tasks (default: {ALL_TASKS})")
    parser.add_argument("--data-root", help="benchmark files: mme/, vqav2/, coco/, flickr30k/, pope/ (a world's eval/)")
    parser.add_argument("--image-root", help="images of VQAv2, POPE and the captions (default: <data-root>/../images)")
    parser.add_argument("--out", help="output folder (predictions, official result files, metrics.json, results.md)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the evaluation already in --out (another model's, say) and start afresh")
    parser.add_argument("--protocol", choices=("official", "paper"), default="official",
                        help="official benchmarks (greedy) or the paper authors' harness (default: official)")
    parser.add_argument("--batch-size", type=int, default=8, help="questions per generate call (default: 8)")
    parser.add_argument("--limit", type=int, help="first N questions per task (per MME subtask / POPE split)")
    parser.add_argument("--max-new-tokens", type=int, help="override the protocol's answer length")
    parser.add_argument("--no-shared-prefix", dest="shared_prefix", action="store_false",
                        help="run every prompt whole, even where questions about one image could share its prefix")
    decoding = parser.add_mutually_exclusive_group()
    decoding.add_argument("--sample", dest="do_sample", action="store_const", const=True, default=None,
                          help="sample instead of greedy decoding")
    decoding.add_argument("--greedy", dest="do_sample", action="store_const", const=False,
                          help="greedy decoding (the official default; overrides --protocol paper's sampling)")
    parser.add_argument("--temperature", type=float, help="sampling temperature (paper protocol: 0.2)")
    parser.add_argument("--top-k", type=int, help="sample from the k most likely tokens (paper protocol: 50)")
    parser.add_argument("--seed", type=int, default=42, help="seed of demonstrations, subsets and sampling (default: 42)")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help="resamples for each metric's 95%% interval (default: 1000; 0: no intervals)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                        help="weights dtype (auto: bfloat16 on a GPU with bf16 tensor cores, float32 otherwise)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 can be faster on a busy machine)")
    parser.add_argument("--bench-batch", help="instead of evaluating, measure questions/s at these batch sizes, e.g. 1,8")
    parser.add_argument("--bench-questions", type=int, default=32, help="questions per batch size for --bench-batch")
    parser.add_argument("--bench-repeats", type=int, default=3, help="passes per batch size; the fastest counts")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    if args.threads is not None:
        if args.threads < 1:
            raise LntuneError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    if args.bench_batch:
        return _bench(args)
    if args.bootstrap < 0:
        raise LntuneError(f"--bootstrap must be 0 (no intervals) or a number of resamples, got {args.bootstrap}")
    if not args.data_root or not args.out:
        raise LntuneError("lntune eval needs --data-root and --out (or --bench-batch)")
    from lntune.eval.report import table1_markdown
    from lntune.eval.runner import evaluate
    from lntune.eval.tasks.registry import parse_task_list

    tasks = parse_task_list(args.tasks)
    if not Path(args.data_root).is_dir():
        raise LntuneError(f"--data-root {args.data_root} is not a folder")
    from lntune.eval.pinning import eval_inputs, pin_evaluation, record_pins
    from lntune.model.load import load_for_inference
    from lntune.locks import hold_lock

    with hold_lock(args.out, "evaluation"):
        pins = pin_evaluation(args.out, eval_inputs(args.model, args.data_root, args.image_root, tasks), args.overwrite)
        model, processor = load_for_inference(args.model, args.dtype, args.device)
        record_pins(args.out, pins)
        metrics = evaluate(
            model, processor, tasks, args.data_root, args.out, protocol=args.protocol, batch_size=args.batch_size,
            limit=args.limit, image_root=args.image_root, max_new_tokens=args.max_new_tokens, do_sample=args.do_sample,
            temperature=args.temperature, top_k=args.top_k, seed=args.seed, model_name=Path(args.model).name,
            bootstrap=args.bootstrap, shared_prefix=args.shared_prefix,
        )
    print(table1_markdown([(Path(args.model).name, metrics)], protocol=args.protocol), end="")
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'results.md'}")
    return 0


def _bench(args) -> int:
    import json
    from pathlib import Path

    from lntune.eval.throughput import format_throughput, measure_throughput
    from lntune.model.load import load_for_inference

    try:
        sizes = tuple(int(b) for b in args.bench_batch.split(","))
    except ValueError:
        raise LntuneError(f"--bench-batch: expected batch sizes like 1,8, got {args.bench_batch!r}") from None
    if not sizes or min(sizes) < 1:
        raise LntuneError(f"--bench-batch: batch sizes must be at least 1, got {args.bench_batch!r}")
    model, processor = load_for_inference(args.model, args.dtype, args.device)
    result = measure_throughput(model, processor, batch_sizes=sizes, questions=args.bench_questions,
                                max_new_tokens=args.max_new_tokens or 16, repeats=args.bench_repeats)
    print(format_throughput(result))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0
