"""``sdtforge`` command line: one subcommand per module of :mod:`sdtforge.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported lazily so that ``sdtforge --help`` stays fast and a command that needs
no torch never imports it.
"""

import argparse
import importlib
import os
import sys

from .errors import UserError

# Order is the order shown by ``sdtforge --help``; it follows the flow.
COMMANDS = [
    "presets", "train", "convert", "quantize", "synth", "eval", "generate", "cosim", "build",
    "run", "report", "demo",
]


def _load(name):
    try:
        return importlib.import_module(f"sdtforge.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"sdtforge.commands.{name}":
            return None  # not built yet
        raise


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` after an option's help, unless the default is ``None`` (then
    the help text says what happens) or the help text already states its default."""

    def _get_help_string(self, action):
        if action.default is None or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sdtforge",
        description="Turn a trained Spike-Driven Transformer into an event-driven accelerator.",
        formatter_class=_HelpFormatter,
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
            formatter_class=_HelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


# Exit code of a command whose reader went away (``sdtforge eval CKPT | head -3``): the
# shell's code for a process killed by SIGPIPE.
EXIT_BROKEN_PIPE = 141


def main(argv=None):
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader closed the pipe: point stdout at /dev/null so that the interpreter's
        # final flush does not fail again, and exit quietly (Python docs, "Note on SIGPIPE").
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass  # stdout is not a file descriptor (e.g. captured in-process)
        return EXIT_BROKEN_PIPE


def _main(argv):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # --help, --version, or a bad argument (usage and one error line printed, code 2):
        # returned like every other outcome, so that in-process callers get the code too.
        return int(exc.code or 0)
    if not getattr(args, "_run", None):
        parser.print_usage(sys.stderr)
        print("sdtforge: error: no command given; `sdtforge --help` lists them",
              file=sys.stderr)
        return 2
    try:
        rc = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return rc
    except UserError as exc:
        print(f"sdtforge {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
