"""`lntune score BENCHMARK ...`: score existing predictions with the benchmarks' official rules.

    lntune score vqav2   --questions Q.json --annotations A.json --predictions P.json [--json]
    lntune score pope    --annotations DIR --predictions P.jsonl [--json]
    lntune score mme     --results-dir DIR [--exclude landmark,artwork] [--json]
    lntune score caption --references KARPATHY.json --predictions P.json [--split test] [--meteor] [--json]

Prints a table, or the result dict as JSON with --json. Each metric comes with a 95% bootstrap interval
(JSON key "ci95"; `--bootstrap N` resamples, default 1000, 0 for none; `--seed`). The rules are in
lntune/eval/metrics/ and docs/evaluation.md ("Scoring rules", "Confidence intervals").
"""

import json
import sys
import warnings

from lntune.eval.report import with_interval


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "score", help="score predictions on VQAv2, POPE, MME or captioning with the official rules",
        description="Score existing predictions (from lntune or any other tool) with the official rules.",
    )
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    benchmarks.required = True

    vqa = benchmarks.add_parser("vqav2", help="VQAv2 accuracy (vqaEval.py rules)")
    vqa.add_argument("--questions", required=True, help="official questions JSON")
    vqa.add_argument("--annotations", required=True, help="official annotations JSON")
    vqa.add_argument("--predictions", required=True, help="results JSON: [{question_id, answer}]")

    pope = benchmarks.add_parser("pope", help="POPE accuracy/precision/recall/F1/yes-ratio per split")
    pope.add_argument("--annotations", required=True, metavar="DIR",
                      help="folder with coco_pope_{random,popular,adversarial}.json")
    pope.add_argument("--predictions", required=True,
                      help="JSON lines: {question_id, category (the split), text}")

    mme = benchmarks.add_parser("mme", help="MME perception and cognition scores (calculation.py rules)")
    mme.add_argument("--results-dir", required=True, metavar="DIR",
                     help="folder of <subtask>.txt files: image<TAB>question<TAB>gt<TAB>response")
    mme.add_argument("--exclude", default="", metavar="A,B",
                     help="subtasks to leave out, e.g. landmark,artwork (the paper authors' protocol)")

    caption = benchmarks.add_parser("caption", help="CIDEr-D, BLEU-4, ROUGE-L (pycocoevalcap)")
    caption.add_argument("--references", required=True, help="Karpathy split JSON (dataset_coco.json, ...)")
    caption.add_argument("--predictions", required=True, help="JSON: [{image_id, caption}]")
    caption.add_argument("--split", default="test", help="split to score (default: test)")
    caption.add_argument("--meteor", action="store_true",
                         help="also compute METEOR (Java; about 20 s of start-up)")

    for sub in (vqa, pope, mme, caption):
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        sub.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                         help="resamples for the 95%% intervals (default: 1000; 0: no intervals)")
        sub.add_argument("--seed", type=int, default=0, help="seed of the resamples (default: 0)")
        sub.set_defaults(func=run)


def run(args) -> int:
    from lntune.eval import metrics
    from lntune.errors import LntuneError

    if args.bootstrap < 0:
        raise LntuneError(f"--bootstrap must be 0 (no intervals) or a number of resamples, got {args.bootstrap}")
    resampling = {"bootstrap": args.bootstrap, "seed": args.seed}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.benchmark == "vqav2":
            result = metrics.score_vqav2(args.questions, args.annotations, args.predictions, **resampling)
        elif args.benchmark == "pope":
            result = metrics.score_pope(args.annotations, args.predictions, **resampling)
        elif args.benchmark == "mme":
            exclude = [name.strip() for name in args.exclude.split(",") if name.strip()]
            result = metrics.score_mme(args.results_dir, exclude=exclude, **resampling)
        else:
            result = metrics.score_captions(args.references, args.predictions, split=args.split,
                                            meteor=args.meteor, **resampling)
    for warning in caught:
        print(f"lntune: warning: {warning.message}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(args.benchmark, result))
    return 0


def format_table(benchmark: str, result: dict) -> str:
    """A plain-text table of one scorer's result dict, with the 95% intervals when it has them."""
    ci = result.get("ci95", {})
    lines = []
    if benchmark == "vqav2":
        lines.append(f"VQAv2 accuracy: {with_interval(result['accuracy'], ci.get('accuracy'), 2)}  "
                     f"({result['questions']} questions)")
        lines.append("")
        lines += _rows("answer type", result["per_answer_type"], ci.get("per_answer_type", {}))
        lines.append("")
        lines += _rows("question type", result["per_question_type"], ci.get("per_question_type", {}))
    elif benchmark == "pope":
        columns = ("accuracy", "precision", "recall", "f1", "yes_ratio")
        width = 16 if ci else 11
        lines.append(f"{'POPE split':<12}" + "".join(f"{c:>{width}}" for c in columns))
        for split, values in result.items():
            if isinstance(values, dict) and split != "ci95":
                lines.append(f"{split:<12}" + "".join(f"{values[c]:>{width}.2f}" for c in columns))
                if split in ci:
                    lines.append(f"{'  95% CI':<12}" + "".join(
                        f"{with_interval(None, ci[split][c], 1):>{width}}" for c in columns))
        lines.append(f"mean F1 {with_interval(result['mean_f1'], ci.get('mean_f1'), 2)}, "
                     f"mean accuracy {with_interval(result['mean_accuracy'], ci.get('mean_accuracy'), 2)}")
    elif benchmark == "mme":
        lines += _rows("MME subtask", result["subtasks"], ci.get("subtasks", {}))
        lines.append("")
        lines += _rows(None, {name: result[name] for name in ("perception", "cognition")}, ci)
    else:
        for name in ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L"):
            if name in result:
                lines.append(f"{name:<10}{result[name]:>8.2f}" + _interval_cell(ci.get(name)))
    if ci:
        lines.append("(95% bootstrap intervals in brackets)")
    if benchmark == "caption":
        lines.append(f"({result['images']} {result['split']} images, tokenizer: {result['tokenizer']})")
    return "\n".join(lines)


def _rows(title, values: dict, intervals: dict) -> list:
    header = [] if title is None else [f"{title:<24}{'score':>10}" + ("  95% CI" if intervals else "")]
    return header + [f"{name:<24}{value:>10.2f}" + _interval_cell(intervals.get(name)) for name, value in values.items()]


def _interval_cell(interval) -> str:
    return f"  {with_interval(None, interval, 2)}" if interval else ""

