"""Checks of the subcommands' arguments, shared by :mod:`sdtforge.commands`.

Value checks are argparse ``type=`` functions: argparse answers a bad value with the usage line
and one ``error:`` line, exit code 2. Checks that need the file system (an input that must
exist, an output that must be writable) run first thing in a command's ``run`` and raise
:class:`~sdtforge.errors.UserError`, so a bad path is refused before any work starts and before
anything is written.
"""

import argparse
import math
import os
from pathlib import Path

from sdtforge.errors import UserError

# AccelConfig's rules for the lanes P and the word width W (sdtforge.hdl.compile): both powers
# of two, W at least 8, P at most W.
MIN_WIDTH = 8
# Seeds go to torch, numpy and nextpnr; 32 bits suit all three.
MAX_SEED = 2**32 - 1


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text):
    """An integer of at least 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value}")
    return value


def nonneg_int(text):
    """An integer of at least 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def seed(text):
    """A random seed, 0 to 2**32 - 1."""
    value = _int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be a seed from 0 to {MAX_SEED}, not {value}")
    return value


def power_of_two(text):
    """A positive power of two (PE lanes ``P``)."""
    value = positive_int(text)
    if value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two, not {value}")
    return value


def word_width(text):
    """A spike word width ``W``: a power of two, at least :data:`MIN_WIDTH`."""
    value = power_of_two(text)
    if value < MIN_WIDTH:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_WIDTH}, not {value}")
    return value


def positive_float(text):
    """A finite number above 0."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {value:g}")
    return value


def fraction(text):
    """A finite number in [0, 1)."""
    value = _float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {value:g}")
    return value


def per_board(value):
    """``"V on board, …"``: ``value(board)`` for every board, for the defaults in ``--help``."""
    from sdtforge.boards.targets import BOARDS

    return ", ".join(f"{value(b)} on {name}" for name, b in sorted(BOARDS.items()))


def check_lanes_width(lanes, width):
    """The compiler's rules for a lane count and word width (tied together, bounded), checked
    before any work: one definition, ``sdtforge.hdl.compile.check_lanes_width``."""
    from sdtforge.hdl.compile import check_lanes_width as check

    check(lanes, width)


def check_writeback_lanes(writeback_lanes, lanes):
    """The compiler's rule for the write-back's lanes (a power of two dividing the lanes),
    checked before any work: one definition, ``sdtforge.hdl.compile.writeback_cycles``."""
    from sdtforge.hdl.compile import writeback_cycles

    try:
        writeback_cycles(lanes, writeback_lanes)
    except UserError as exc:
        raise UserError(f"--writeback-lanes {writeback_lanes}: {exc}") from None


def check_stream_latency(stream_latency, writeback_lanes, lanes):
    """A stream read of several cycles needs a write-back of every lane at once
    (``AccelConfig.stream_latency``), checked before any work."""
    if stream_latency > 1 and writeback_lanes not in (None, lanes):
        raise UserError(f"--stream-latency {stream_latency} needs every lane in the write-back: "
                        f"drop --writeback-lanes {writeback_lanes}")


# ---------------------------------------------------------------------------------------------
# File system checks (UserError, at the start of run())


def input_file(path, option):
    """``path`` (given as ``option``) is an existing, readable regular file."""
    if path is None:
        return
    path = Path(path)
    if not path.exists():
        raise UserError(f"{option} {path} does not exist")
    if not path.is_file():
        raise UserError(f"{option} {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{option} {path} is not readable")


def input_dir(path, option):
    """``path`` (given as ``option``) is an existing directory."""
    if path is None:
        return
    path = Path(path)
    if not path.exists():
        raise UserError(f"{option} {path} does not exist")
    if not path.is_dir():
        raise UserError(f"{option} {path} is not a directory")


def _writable_dir(directory, path, option):
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: directory {directory} is not writable")


def _nearest_existing(path):
    """The nearest of ``path``'s ancestors that exists (``path`` itself excluded)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def output_dir(path, option="--out"):
    """``path`` is a directory that exists and is writable, or one that can be made."""
    if path is None:
        return
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{option} {path} is an existing file, not a directory")
        _writable_dir(path, path, option)
        return
    ancestor = _nearest_existing(path)
    if not ancestor.is_dir():
        raise UserError(f"{option} {path}: {ancestor} is a file, not a directory")
    _writable_dir(ancestor, path, option)


def output_file(path, option="--out", *, make_parents=True):
    """``path`` is a file that can be written (its directory made when ``make_parents``)."""
    path = Path(path)
    if path.exists():
        if path.is_dir():
            raise UserError(f"{option} {path} is a directory, not a file")
        if not os.access(path, os.W_OK):
            raise UserError(f"{option} {path} is not writable")
    parent = path.parent
    if not parent.exists():
        if not make_parents:
            raise UserError(f"{option} {path}: directory {parent} does not exist")
        output_dir(parent, option)
        return
    if not parent.is_dir():
        raise UserError(f"{option} {path}: {parent} is a file, not a directory")
    _writable_dir(parent, path, option)
