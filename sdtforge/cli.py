"""``sdtforge`` command line: one subcommand per module of :mod:`sdtforge.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported lazily so that ``sdtforge --help`` stays fast and a command that needs
no torch never imports it.
"""

import argparse
import importlib
import sys

from .errors import UserError

# Order is the order shown by ``sdtforge --help``; it follows the flow.
COMMANDS = [
    "presets", "train", "convert", "quantize", "eval", "generate", "cosim", "build", "run",
    "report", "demo",
]


def _load(name):
    try:
        return importlib.import_module(f"sdtforge.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"sdtforge.commands.{name}":
            return None  # not built yet
        raise


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sdtforge",
        description="Turn a trained Spike-Driven Transformer into an event-driven accelerator.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    from . import __version__
    parser.add_argument("--version", action="version", version=f"sdtforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        p = sub.add_parser(
            module.NAME, help=module.HELP, description=module.HELP,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"sdtforge {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
