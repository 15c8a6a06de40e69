"""The `lntune` command line: one subcommand per verb, each defined in lntune/commands/<verb>.py.

Run `lntune --help` for the list. This file only parses and dispatches; the work is in the library.
A failure on bad input or of the machine (a full disk, say) is one line `lntune: error: ...` and exit status 2
(lntune/failures.py); `lntune --debug COMMAND` or LNTUNE_DEBUG=1 adds its traceback.
"""

import argparse
import importlib
import pkgutil
import sys
import traceback

from lntune import commands
from lntune.errors import LntuneError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lntune",
        description="Tune the normalization layers of an LLM to make it multi-modal (LLaVA-style).",
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a failure (also: environment variable LNTUNE_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"lntune.commands.{info.name}")
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    from lntune.failures import debug_wanted, describe_failure

    args = build_parser().parse_args(argv)
    debug = debug_wanted(args.debug)
    try:
        status = args.func(args)
    except LntuneError as err:
        if debug:
            traceback.print_exc()
        print(f"lntune: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        line = describe_failure(err)
        if line is None:
            raise  # a bug: its traceback is what it takes to fix it
        if debug:
            traceback.print_exc()
        print(f"lntune: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lntune: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
