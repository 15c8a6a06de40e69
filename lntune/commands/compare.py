"""`lntune compare EVAL_DIR_A EVAL_DIR_B`: is B better than A? Paired differences with intervals and p-values.

    lntune compare runs/stage1/eval runs/ln/eval [--json] [--bootstrap 1000] [--seed 0]

Both folders are `lntune eval --out` folders of the same questions. Prints, per task both evaluated and
per headline metric, A, B, B - A, the paired-bootstrap 95% interval of B - A and a two-sided p-value;
with --json, {task: {metric: {"a", "b", "difference", "ci95", "p_value"}}}. See lntune/eval/compare.py.
"""

import json

from lntune.errors import LntuneError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="paired difference of two evaluations (interval and p-value per metric)",
        description="Compare two `lntune eval` folders on the same questions with a paired bootstrap.",
    )
    parser.add_argument("eval_dir_a", metavar="EVAL_DIR_A", help="the reference evaluation (A)")
    parser.add_argument("eval_dir_b", metavar="EVAL_DIR_B", help="the evaluation compared with it (B)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="resamples (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resamples (default: 0)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from lntune.eval.compare import compare_eval_dirs, format_comparison

    if args.bootstrap < 1:
        raise LntuneError(f"--bootstrap must be at least 1 for a comparison, got {args.bootstrap}")
    result = compare_eval_dirs(args.eval_dir_a, args.eval_dir_b, n_resamples=args.bootstrap, seed=args.seed)
    print(json.dumps(result, indent=2) if args.json else format_comparison(result))
    return 0
