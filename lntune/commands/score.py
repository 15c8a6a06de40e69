"""`lntune score BENCHMARK ...`: score existing predictions with the benchmarks' official rules.

    lntune score vqav2   --questions Q.json --annotations A.json --predictions P.json [--json]
    lntune score pope    --annotations DIR --predictions P.jsonl [--json]
    lntune score mme     --results-dir DIR [--exclude landmark,artwork] [--json]
    lntune score caption --references KARPATHY.json --predictions P.json [--split test] [--meteor] [--json]

Prints a table, or the result dict as JSON with --json. The rules are in lntune/eval/metrics/ and
docs/evaluation.md ("Scoring rules").
"""

import json
import sys
import warnings


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
        sub.set_defaults(func=run)


def run(args) -> int:
    from lntune.eval import metrics

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.benchmark == "vqav2":
            result = metrics.score_vqav2(args.questions, args.annotations, args.predictions)
        elif args.benchmark == "pope":
            result = metrics.score_pope(args.annotations, args.predictions)
        elif args.benchmark == "mme":
            exclude = [name.strip() for name in args.exclude.split(",") if name.strip()]
            result = metrics.score_mme(args.results_dir, exclude=exclude)
        else:
            result = metrics.score_captions(args.references, args.predictions, split=args.split,
                                            meteor=args.meteor)
    for warning in caught:
        print(f"lntune: warning: {warning.message}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(args.benchmark, result))
    return 0


def format_table(benchmark: str, result: dict) -> str:
    """A plain-text table of one scorer's result dict."""
    lines = []
    if benchmark == "vqav2":
        lines.append(f"VQAv2 accuracy: {result['accuracy']:.2f}  ({result['questions']} questions)")
        lines.append("")
        lines += _rows("answer type", result["per_answer_type"])
        lines.append("")
        lines += _rows("question type", result["per_question_type"])
    elif benchmark == "pope":
        columns = ("accuracy", "precision", "recall", "f1", "yes_ratio")
        lines.append(f"{'POPE split':<12}" + "".join(f"{c:>11}" for c in columns))
        for split, values in result.items():
            if isinstance(values, dict):
                lines.append(f"{split:<12}" + "".join(f"{values[c]:>11.2f}" for c in columns))
        lines.append(f"mean F1 {result['mean_f1']:.2f}, mean accuracy {result['mean_accuracy']:.2f}")
    elif benchmark == "mme":
        lines += _rows("MME subtask", result["subtasks"])
        lines.append("")
        lines.append(f"{'perception':<24}{result['perception']:>10.2f}")
        lines.append(f"{'cognition':<24}{result['cognition']:>10.2f}")
    else:
        for name in ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L"):
            if name in result:
                lines.append(f"{name:<10}{result[name]:>8.2f}")
        lines.append(f"({result['images']} {result['split']} images, tokenizer: {result['tokenizer']})")
    return "\n".join(lines)


def _rows(title: str, values: dict) -> list:
    return [f"{title:<24}{'score':>10}"] + [f"{name:<24}{value:>10.2f}" for name, value in values.items()]
