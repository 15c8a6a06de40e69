"""`lntune reproduce`: the paper's experiments in miniature on the embedded default, offline, with a report.

    lntune reproduce --preset world-quick --out runs/reproduce       # ~50 min planned on an idle 2-core CPU
    lntune reproduce --preset world-quick --out runs/reproduce --export-docs docs   # also docs/reproduction.md

Re-running the same command after a kill continues where it stopped. Writes DIR/report.md, DIR/results.json
and DIR/figures/*.png.
"""


def register(subparsers):
    parser = subparsers.add_parser("reproduce", help="reproduce the paper's tables and figures in miniature, with verdicts")
    parser.add_argument("--preset", default="world-quick",
                        help="world-quick (<= 1 h on 2 cores) or world-full (the paper's 11 learning rates; days on a "
                             "CPU); lntune/configs/presets/reproduce.yaml lists them")
    parser.add_argument("--out", default="runs/reproduce", help="output directory (re-use it to resume)")
    parser.add_argument("--export-docs", metavar="DIR", default=None,
                        help="also copy the report to DIR/reproduction.md and its figures to DIR/reproduction/")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice); 1 is much faster on a machine busy with other work")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: write the report from the jobs already finished in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from lntune.reproduce.experiments import get_preset
    from lntune.reproduce.report import export_docs
    from lntune.reproduce.runner import reproduce

    get_preset(args.preset)  # an unknown name is refused before anything is written
    out = Path(args.out)
    if args.threads is not None and args.threads < 1:
        from lntune.errors import LntuneError

        raise LntuneError(f"--threads must be >= 1, got {args.threads}")
    from lntune.ownership import claim_folder, mark_folder

    claim_folder(out, "reproduction", legacy=("jobs.json", "report.md"))  # new, empty or a reproduction's
    out.mkdir(parents=True, exist_ok=True)
    mark_folder(out, "reproduction")
    reproduce(args.preset, out, progress=not args.no_progress, threads=args.threads, report_only=args.report_only)
    print(f"lntune reproduce: report at {out / 'report.md'}")
    if args.export_docs:
        print(f"lntune reproduce: copied to {export_docs(out, Path(args.export_docs))}")
    return 0
