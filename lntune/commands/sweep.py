"""`lntune sweep`: stage 2 once per learning rate, evaluated on a selection task; picks the best.

    lntune sweep --config configs/world/stage2_layernorm.yaml --lrs 2e-3,1e-3,6e-4 --out runs/sweep
    lntune sweep --config configs/paper/stage2_vicuna7b_layernorm.yaml --data-root /data/eval    # the paper's 11 values
"""


def register(subparsers):
    parser = subparsers.add_parser("sweep", help="learning-rate sweep of one stage-2 config")
    parser.add_argument("--config", required=True)
    parser.add_argument("--lrs", default=None, help="comma-separated learning rates (default: the paper's 11 values)")
    parser.add_argument("--select-task", default="flickr30k", help="flickr30k (the paper), coco, vqav2, pope or mme")
    parser.add_argument("--out", default=None, help="sweep directory (default: <output_dir of the config>-sweep)")
    parser.add_argument("--data-root", default=None, help="benchmark root (default: the world's eval/ folder)")
    parser.add_argument("--limit", type=int, default=None, help="questions per task in the selection evaluation")
    parser.add_argument("--batch-size", type=int, default=8, help="evaluation batch size")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.set_defaults(func=run)


def run(args) -> int:
    from lntune.config import load_config
    from lntune.errors import LntuneError
    from lntune.sweep import PAPER_GRID, sweep, sweep_markdown

    try:
        lrs = [float(x) for x in args.lrs.split(",")] if args.lrs else list(PAPER_GRID)
    except ValueError:
        raise LntuneError(f"--lrs: expected comma-separated numbers, got {args.lrs!r}") from None
    out = args.out or load_config(args.config, args.overrides).output_dir.rstrip("/") + "-sweep"
    result = sweep(args.config, lrs, out, args.select_task, args.overrides, args.data_root, args.limit, args.batch_size)
    print(sweep_markdown(result))
    print(f"best learning rate: {result['best']['lr']:g} ({result['select_task']} {result['best']['metric']:.2f}) -> {out}")
    return 0
