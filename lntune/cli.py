"""The `lntune` command line: one subcommand per verb, each defined in lntune/commands/<verb>.py.

Run `lntune --help` for the list. This file only parses and dispatches; the work is in the library.
"""

import argparse
import importlib
import pkgutil
import sys

from lntune import commands
from lntune.errors import LntuneError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lntune",
        description="Tune the normalization layers of an LLM to make it multi-modal (LLaVA-style).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"lntune.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except LntuneError as err:
        print(f"lntune: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lntune: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
