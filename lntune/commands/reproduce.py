"""`lntune reproduce`: the paper's experiments in miniature on the embedded default, offline, with a report.

    lntune reproduce --preset world-quick --out runs/reproduce       # every experiment (--plan: how long)
    lntune reproduce --preset world-quick --out runs/reproduce --export-docs docs   # also docs/reproduction.md
    lntune reproduce --only table1 --strategies layernorm --seeds 0 --no-sweep --out runs/ln   # one model
    lntune reproduce --plan                                            # the jobs and their planned minutes

Re-running the same command after a kill continues where it stopped. Writes DIR/report.md, DIR/results.json
and DIR/figures/*.png.
"""


from lntune.reproduce.experiments import EXPERIMENTS


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _seeds(text: str | None) -> list[int] | None:
    from lntune.errors import LntuneError

    try:
        return [int(t) for t in _names(text)] if text else None
    except ValueError:
        raise LntuneError(f"--seeds: expected integers separated by commas, got {text!r}") from None


def register(subparsers):
    parser = subparsers.add_parser("reproduce", help="reproduce the paper's tables and figures in miniature, with verdicts")
    parser.add_argument("--preset", default="world-quick",
                        help="world-quick (about 5 h on 2 cores in float32; --plan says) or world-full (the paper's 11 learning rates; days on a "
                             "CPU); lntune/configs/presets/reproduce.yaml lists them")
    parser.add_argument("--out", default="runs/reproduce", help="output directory (re-use it to resume)")
    parser.add_argument("--export-docs", metavar="DIR", default=None,
                        help="also copy the report to DIR/reproduction.md and its figures to DIR/reproduction/")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice); 1 is much faster on a machine busy with other work")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write the report from the jobs already finished in --out")
    parser.add_argument("--only", default=None, metavar="EXP[,EXP...]",
                        help="run and report just these experiments: " + ", ".join(EXPERIMENTS))
    parser.add_argument("--strategies", default=None, metavar="S[,S...]",
                        help="Table 1's strategies (default: all six); experiments that read others are skipped")
    parser.add_argument("--seeds", default=None, metavar="N[,N...]", help="Table 1's train seeds (default: the preset's)")
    parser.add_argument("--no-sweep", action="store_true",
                        help="train each strategy at the preset's default learning rate instead of sweeping")
    parser.add_argument("--plan", action="store_true", help="print the planned jobs and minutes; run nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lntune.reproduce.experiments import get_preset, restricted
    from lntune.reproduce.report import export_docs
    from lntune.reproduce.runner import plan_text
    from lntune.reproduce.runner import reproduce

    from lntune.errors import LntuneError

    # an unknown name or option is refused before anything is written
    preset = restricted(get_preset(args.preset), only=_names(args.only), strategies=_names(args.strategies),
                        seeds=_seeds(args.seeds), no_sweep=args.no_sweep)
    out = Path(args.out)
    if args.plan:
        print(plan_text(preset, out))
        return 0
    if args.threads is not None and args.threads < 1:
        raise LntuneError(f"--threads must be >= 1, got {args.threads}")
    from lntune.ownership import claim_folder, mark_folder

    claim_folder(out, "reproduction", legacy=("jobs.json", "report.md"))  # new, empty or a reproduction's
    out.mkdir(parents=True, exist_ok=True)
    mark_folder(out, "reproduction")
    reproduce(preset, out, progress=not args.no_progress, threads=args.threads, report_only=args.report_only)
    print(f"lntune reproduce: report at {out / 'report.md'}")
    if args.export_docs:
        print(f"lntune reproduce: copied to {export_docs(out, Path(args.export_docs))}")
    return 0
