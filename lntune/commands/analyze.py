"""`lntune analyze`: the paper's Sec. 5 analyses, layer similarity (Table 6, Fig. 3) and LayerNorm gradients
over training (Fig. 4, A3, A4), and the grounding control of yes/no answers (true vs shuffled images).

    lntune analyze similarity --model runs/ln --compare runs/ft --data llava.json --images IMAGES \
        [--samples 32] [--seed 0] [--batch-size 8] [--out analysis/] [--json]
    lntune analyze gradients runs/ln [--compare runs/ft] [--layers 11,21] [--out analysis/] [--json]
    lntune analyze grounding --model runs/ln [--data-root WORLD/eval] [--image-root DIR] [--seed 0] \
        [--batch-size 16] [--limit N] [--out analysis/] [--json]

With --out, writes similarity.{json,png}, gradients.{json,png} or grounding.{json,png} there. Definitions: docs/analysis.md.
"""

import json
from pathlib import Path

from lntune.errors import LntuneError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze", help="layer similarity (Table 6, Fig. 3), LayerNorm gradients over training (Fig. 4), "
                        "yes/no grounding (true vs shuffled images)",
        description="The paper's analyses of Sec. 5; see docs/analysis.md.",
    )
    kinds = parser.add_subparsers(dest="analysis", metavar="ANALYSIS")
    kinds.required = True

    sim = kinds.add_parser("similarity", help="layer x layer cosine similarity of hidden states (Table 6, Fig. 3)")
    sim.add_argument("--model", required=True, help="an HF LLaVA directory or an lntune run directory")
    sim.add_argument("--compare", help="a second model, analysed on the same samples and drawn beside the first")
    sim.add_argument("--data", required=True, help="LLaVA JSON whose samples are fed to the model")
    sim.add_argument("--images", help="image folder of --data")
    sim.add_argument("--samples", type=int, default=32, help="seeded subset size (default: 32)")
    sim.add_argument("--seed", type=int, default=0, help="seed of the subset (default: 0)")
    sim.add_argument("--batch-size", type=int, default=8, help="samples per forward pass (default: 8)")
    sim.add_argument("--max-length", type=int, default=2048, help="drop samples longer than this (default: 2048)")
    _add_device_options(sim)
    sim.add_argument("--out", help="folder for similarity.json and similarity.png")
    sim.add_argument("--json", action="store_true", help="print the result as JSON")
    sim.set_defaults(func=run)

    grads = kinds.add_parser("gradients", help="norm gradient statistics recorded during training (Fig. 4)")
    grads.add_argument("run_dir", metavar="RUN_DIR", help="a run trained with train.track_grads (has grads.jsonl)")
    grads.add_argument("--compare", metavar="RUN_DIR2", help="a second run, overlaid and compared")
    grads.add_argument("--layers", help="only these tracked layers, e.g. 11,21 (default: all tracked)")
    grads.add_argument("--out", help="folder for gradients.json and gradients.png")
    grads.add_argument("--json", action="store_true", help="print the result as JSON")
    grads.set_defaults(func=run)

    ground = kinds.add_parser("grounding", help="yes-vs-no score of POPE/MME questions with true vs shuffled images")
    ground.add_argument("--model", required=True, help="an HF LLaVA directory or an lntune run directory")
    ground.add_argument("--data-root", help="benchmark files with pope/ and/or mme/ (default: the eval/ folder of "
                                            "the world the run was trained on)")
    ground.add_argument("--image-root", help="images of POPE (default: <data-root>/../images)")
    ground.add_argument("--seed", type=int, default=0, help="seed of the image permutation (default: 0)")
    ground.add_argument("--batch-size", type=int, default=16, help="questions per forward pass (default: 16)")
    ground.add_argument("--limit", type=int, help="first N questions per POPE split / MME subtask")
    _add_device_options(ground)
    ground.add_argument("--out", help="folder for grounding.json (with every question's scores) and grounding.png")
    ground.add_argument("--json", action="store_true", help="print the summary as JSON")
    ground.set_defaults(func=run)


def _add_device_options(parser) -> None:
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                        help="weights dtype (auto: bfloat16 on a GPU with bf16 tensor cores, float32 otherwise)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")


def run(args) -> int:
    result = {"similarity": _similarity, "gradients": _gradients, "grounding": _grounding}[args.analysis](args)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def _write_result(out, stem: str, result: dict, plot) -> None:
    """out/<stem>.json from `result` and out/<stem>.png drawn by `plot(png_path)`."""
    from lntune.locks import write_text_atomic

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    plot(out / f"{stem}.png")


def _wrote(out, stem: str) -> str:
    return f"wrote {Path(out) / (stem + '.json')} and {Path(out) / (stem + '.png')}"


def _names(paths: list[str]) -> list[str]:
    """Folder names as labels, or the paths themselves when two folders share a name."""
    names = [Path(p).resolve().name or str(p) for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def _similarity(args) -> dict:
    import gc

    import torch

    from lntune.analysis import layer_similarity, plot_similarity
    from lntune.model.load import load_for_inference

    if not Path(args.data).is_file():
        raise LntuneError(f"--data {args.data}: no such file")
    paths = [args.model] + ([args.compare] if args.compare else [])
    models = {}
    for name, path in zip(_names(paths), paths):
        model, processor = load_for_inference(path, args.dtype, args.device)
        models[name] = layer_similarity(model, processor, args.data, args.images, samples=args.samples,
                                        seed=args.seed, batch_size=args.batch_size, max_length=args.max_length)
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    result = {"models": models, "data": str(args.data), "seed": args.seed}
    if args.compare:
        first, second = (models[n]["mean_offdiag"] for n in models)
        result["change_vs_compare"] = (first - second) / second
    if args.out:
        _write_result(args.out, "similarity", result, lambda png: plot_similarity(models, png))
    if not args.json:
        for name, r in models.items():
            print(f"{name}: mean layer similarity {r['mean_offdiag']:.4f} "
                  f"({r['layers']} layers, {r['samples']} samples, {r['tokens']} tokens)")
        if args.compare:
            names = list(models)
            change = result["change_vs_compare"]
            print(f"{names[0]} is {abs(change) * 100:.1f}% {'lower' if change < 0 else 'higher'} than {names[1]}")
        if args.out:
            print(_wrote(args.out, "similarity"))
    return result


def _grounding(args) -> dict:
    from lntune.analysis.grounding import grounding_scores, grounding_table
    from lntune.analysis.plots import plot_grounding
    from lntune.model.load import load_for_inference

    if args.limit is not None and args.limit < 1:
        raise LntuneError(f"--limit must be at least 1, got {args.limit}")
    data_root = Path(args.data_root) if args.data_root else _run_world_eval_root(args.model)
    model, processor = load_for_inference(args.model, args.dtype, args.device)
    result = grounding_scores(model, processor, data_root, image_root=args.image_root, seed=args.seed,
                              batch_size=args.batch_size, limit=args.limit, progress=not args.json)
    result["model"] = str(args.model)
    if args.out:
        _write_result(args.out, "grounding", result, lambda png: plot_grounding(result, png))
    if not args.json:
        print(grounding_table(result))
        if args.out:
            print(_wrote(args.out, "grounding"))
    return {k: v for k, v in result.items() if k != "questions"}


def _run_world_eval_root(model_path) -> Path:
    """The eval/ folder of the world an lntune run was trained on (its config's data.image_folder's sibling)."""
    from lntune.run_dir import RunDir

    run_file = RunDir(model_path).run_file
    config = json.loads(run_file.read_text()).get("config", {}) if run_file.is_file() else {}
    image_folder = (config.get("data") or {}).get("image_folder")
    if not config.get("world") or not image_folder:
        raise LntuneError(f"--data-root is needed: {model_path} is not a run trained on a world (no world section "
                          f"in {run_file.name})")
    return Path(image_folder).parent / "eval"


def _parse_layers(text):
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise LntuneError(f"--layers {text!r}: expected comma-separated layer numbers, e.g. 11,21") from None


def _gradients(args) -> dict:
    from lntune.analysis import compare_summaries, gradient_summary, plot_gradients

    layers = _parse_layers(args.layers)
    paths = [args.run_dir] + ([args.compare] if args.compare else [])
    names = _names(paths)
    runs = {name: gradient_summary(path, layers) for name, path in zip(names, paths)}
    result = {"runs": runs}
    if args.compare:
        result["ratios"] = compare_summaries(runs[names[0]], runs[names[1]])
    if args.out:
        _write_result(args.out, "gradients", result,
                      lambda png: plot_gradients(dict(zip(names, map(Path, paths))), png, layers))
    if not args.json:
        print(_gradient_table(result, names))
        if args.out:
            print(_wrote(args.out, "gradients"))
    return result


def _gradient_table(result: dict, names: list[str]) -> str:
    lines = [f"{'run':<20} {'layer':>5} {'norm':<25} {'steps':>5} {'mean of std':>12} {'var of mean':>12}"]
    for name in names:
        for e in result["runs"][name]["entries"]:
            lines.append(f"{name[:20]:<20} {e['layer']:>5} {e['norm']:<25} {e['steps']:>5} "
                         f"{e['mean_of_std']:>12.4e} {e['var_of_mean']:>12.4e}")
    if "ratios" in result:
        lines.append(f"\nratio {names[0]} / {names[1]} (below 1: {names[0]}'s gradients are more concentrated)")
        for r in result["ratios"]:
            std, var = (r[k] for k in ("mean_of_std_ratio", "var_of_mean_ratio"))
            lines.append(f"  layer {r['layer']:>3} {r['norm']:<25} mean of std {_fmt(std)}  var of mean {_fmt(var)}")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
