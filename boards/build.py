"""Bitstream builds through amaranth-boards with YoWASP Yosys + nextpnr, and their report.

The build is the platform's own (``platform.build(top, do_program=False)``) with a seeded,
timing-driven nextpnr that writes its JSON report; the figures reported are read from the
tools' outputs, never estimated: cells from Yosys ``stat`` after technology mapping,
utilization and Fmax from nextpnr's ``--report``.
"""

import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

from sdtforge.errors import UserError
from sdtforge.hdl.ram import YOSYS_COMMANDS
from sdtforge.sim.toolchain import setup_yowasp

from .targets import BLOCK_COMMANDS, DISTRIBUTED_COMMANDS

__all__ = ["build_bitstream", "parse_yosys_stat", "summarize", "BuildProgress"]

_STAT_LINE = re.compile(r"^\s+(\d+)\s+([A-Za-z_$][\w$]*)\s*$")


def parse_yosys_stat(text):
    """``{cell type: count}`` of the last module listing in a Yosys ``stat`` output."""
    cells = {}
    for line in text.splitlines():
        if line.startswith("==="):
            cells = {}
        match = _STAT_LINE.match(line)
        if match and not match[2].endswith(("wires", "bits", "ports", "cells")):
            cells[match[2]] = int(match[1])
    return cells


def _used(util, key):
    entry = util.get(key)
    return None if entry is None else int(entry["used"])


def summarize(board, cells, report, f_sync):
    """The build figures as one flat dict (what ``sdtforge build`` prints and writes).

    Logic and memory counts per family (iCE40: ``lc``, ``lut4``, ``ff``, ``bram``, ``spram``,
    ``dsp``; ECP5: ``lut4``, ``slice_comb``, ``ff``, ``bram``, ``dsp``), the clock the design was
    built for (``clock_mhz``, also as ``f_sync_mhz``), nextpnr's ``fmax_mhz`` and whether it
    reaches the clock (``timing_met``).
    """
    util = report.get("utilization", {})
    fmax = report.get("fmax", {})
    # The PLL output is the only constrained clock of the design.
    achieved = min((v["achieved"] for v in fmax.values()), default=None)
    if board.family == "ice40":
        figures = {
            "lc": _used(util, "ICESTORM_LC"), "lc_available": board.luts,
            "lut4": cells.get("SB_LUT4", 0),
            "ff": sum(n for c, n in cells.items() if c.startswith("SB_DFF")),
            "bram": _used(util, "ICESTORM_RAM"), "bram_available": board.brams,
            "spram": _used(util, "ICESTORM_SPRAM"), "spram_available": board.sprams,
            "dsp": _used(util, "ICESTORM_DSP"),
        }
    else:
        figures = {
            "lut4": cells.get("LUT4", 0), "lut4_available": board.luts,
            "slice_comb": _used(util, "TRELLIS_COMB"),
            "ff": _used(util, "TRELLIS_FF"),
            "bram": _used(util, "DP16KD"), "bram_available": board.brams,
            "dsp": _used(util, "MULT18X18D"),
        }
    figures.update({
        "board": board.name, "device": board.device, "bram_type": board.bram_name,
        # The built clock; ``f_sync_mhz`` is its earlier name, kept for existing readers.
        "clock_mhz": round(f_sync / 1e6, 3), "f_sync_mhz": round(f_sync / 1e6, 3),
        "fmax_mhz": None if achieved is None else round(achieved, 2),
        "timing_met": None if achieved is None else achieved >= f_sync / 1e6,
    })
    return figures


class BuildProgress:
    """The stage a build is in, read from the tools' logs as they write them.

    Yosys logs to ``NAME.rpt``, nextpnr to ``NAME.tim``; nextpnr's log names its placer and
    router as they start. :meth:`poll` returns a line when the stage changes and, while a stage
    lasts, every ``every`` seconds (a 32-lane ULX3S build routes for half an hour, and a build
    that says nothing for that long looks hung).

    Parameters
    ----------
    out_dir : Path
        The build directory.
    name : str
        The design's file name stem.
    clock : callable
        Seconds now (``time.monotonic``).
    every : float
        Seconds between lines while a stage lasts.
    """

    #: nextpnr log lines that start a stage (the first line holding the text).
    PNR_STAGES = (("placing", "placer"), ("routing", "Routing"), ("writing the bitstream",
                                                                  "Program finished normally"))

    def __init__(self, out_dir, name="sdtforge", *, clock=time.monotonic, every=120.0):
        self.out_dir, self.name, self.clock, self.every = Path(out_dir), name, clock, every
        self.start = clock()
        self.stage, self.said = None, None

    def current(self):
        """The stage the logs show: ``None`` before Yosys starts, then ``"synthesis"``, ...
        (:attr:`PNR_STAGES`)."""
        tim = self.out_dir / f"{self.name}.tim"
        if not tim.exists():
            return "synthesis" if (self.out_dir / f"{self.name}.rpt").exists() else None
        log = tim.read_text(errors="replace")
        stage = "reading the netlist"
        for label, marker in self.PNR_STAGES:
            if marker in log:
                stage = label
        return stage

    def poll(self):
        """A line to print (``STAGE (ELAPSED)``), or ``None``."""
        now = self.clock()
        stage = self.current()
        if stage is None or (stage == self.stage and now - self.said < self.every):
            return None
        self.stage, self.said = stage, now
        elapsed = int(now - self.start)
        return f"{stage} ({elapsed // 60} min {elapsed % 60:02d} s)"


def _watch(progress, say, stop, interval=2.0):
    """Say ``progress``'s lines until ``stop`` is set (a log that cannot be read this time is
    read again at the next poll)."""
    while not stop.wait(interval):
        try:
            line = progress.poll()
        except OSError:
            continue
        if line:
            say(line)


#: The assertion YoWASP Yosys 0.62-0.70 stops on in ABC9's reintegration for some netlists.
ABC9_FAULT = "Assert `GetSize(conn.first) == GetSize(conn.second)' failed"
#: Another assertion of the same pass: a wire it adds is named as one the module has (the
#: ULX3S's cifar10-2-256 top with the stream memory's registered read, Yosys 0.70).
ABC9_NAME_FAULT = "Assert `count_id(wire->name) == 0' failed"
#: What ``check -assert`` says of a netlist in which ABC9 left a net with two drivers (the
#: same fault's other face; nextpnr would refuse the net).
TWO_DRIVERS = "multiple conflicting drivers"
#: What ``check -assert`` says of a netlist in which ABC9 left flip-flop inputs undriven (its
#: third face: ``synth_ecp5 -dff`` on the ULX3S's 32-lane top, Yosys 0.69).
NO_DRIVER = "is used but has no driver"
#: The synthesis options per family. Neither board uses a DSP block (``synth_ice40`` only
#: with ``-dsp``). On the iCE40, ABC9 maps with the flip-flops in its netlist (``-dff``): the
#: two-lane digits-tiny engine took 27 fewer logic cells and its Fmax median was 27.55 MHz
#: instead of 25.70 (docs/boards.md §4b). On the ECP5's 32-lane top ``-dff`` took 18 minutes
#: and left undriven wires (:data:`NO_DRIVER`).
SYNTH_OPTS = {"ecp5": "-nodsp", "ice40": "-dff"}
#: The options a build tries in turn after a fault: each changes the netlist ABC9 sees (ECP5:
#: one module at a time, small memories in flip-flops; iCE40: ABC9 without the flip-flops).
SYNTH_FALLBACKS = {"ecp5": ("-nodsp -noflatten", "-nodsp -nolutram"), "ice40": ("",)}


class _SynthFault(subprocess.CalledProcessError):
    """Yosys stopped on :data:`ABC9_FAULT` or :data:`ABC9_NAME_FAULT`, or its check found
    :data:`TWO_DRIVERS` or :data:`NO_DRIVER`."""


def _tool_log(out_dir, name):
    """The log of the tool that failed: nextpnr's if it has an error, else Yosys'."""
    log = ""
    for suffix in (".tim", ".rpt"):
        path = out_dir / f"{name}{suffix}"
        if path.exists():
            log = path.read_text(errors="replace")
            if "ERROR" in log:
                break
    return log


def _run_tools(board, top, name, out_dir, overrides):
    """One run of the tools on a fresh platform of ``board`` (Amaranth's build plan, executed
    in ``out_dir``; a platform builds once)."""
    platform = board.platform()
    for stale in (f"{name}.rpt", f"{name}.tim"):     # an earlier run's logs
        (out_dir / stale).unlink(missing_ok=True)
    try:
        # No source locations in the netlist: they hold absolute paths, and the bitstream must
        # not depend on where the checkout lives.
        platform.build(top, name=name, build_dir=str(out_dir), do_program=False,
                       emit_src=False, **overrides)
    except subprocess.CalledProcessError as exc:
        log = _tool_log(out_dir, name)
        for fault in (ABC9_FAULT, ABC9_NAME_FAULT, TWO_DRIVERS, NO_DRIVER):
            if fault in log and (fault not in (ABC9_FAULT, ABC9_NAME_FAULT)
                                 or "ABC_OPS_REINTEGRATE" in log):
                raise _SynthFault(exc.returncode, exc.cmd, output=fault) from None
        raise


def build_bitstream(board, top, out_dir, *, seed=1, name="sdtforge", f_sync, progress=None):
    """Synthesize, place, route and pack ``top`` for ``board`` in ``out_dir``.

    Returns the :func:`summarize` dict, also written to ``out_dir/report.json``. ``progress``,
    a callable, is given a line each time the build's stage changes and every two minutes
    while one lasts (:class:`BuildProgress`).

    Yosys synthesizes with the family's :data:`SYNTH_OPTS` and checks the netlist it writes
    (``check -assert``). Where it stops on :data:`ABC9_FAULT` or :data:`ABC9_NAME_FAULT`, or
    the check finds :data:`TWO_DRIVERS` or :data:`NO_DRIVER`, synthesis runs again with each
    of the family's :data:`SYNTH_FALLBACKS` in turn (the dict's ``synth_opts`` then says which
    got through).

    Raises
    ------
    UserError
        A tool failed (the message quotes the last lines of its log) — for example the design
        does not fit the device.
    """
    setup_yowasp()
    # The ULX3S platform lists openFPGALoader among its required tools even when it only
    # builds; any harmless program satisfies the check, and nothing is programmed here.
    os.environ.setdefault("OPENFPGALOADER", "true")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    overrides = {
        "nextpnr_opts": f"--seed {int(seed)} --timing-allow-fail --report {name}.report.json",
        # A netlist with a multiply driven net stops here, not in nextpnr.
        "script_after_synth": f"tee -q -o {name}.stat stat\ncheck -assert",
        # The loader-filled memories' read ports without collision logic (hdl.ram).
        "script_after_read": "\n".join(YOSYS_COMMANDS),
    }
    overrides["synth_opts"] = SYNTH_OPTS[board.family]
    # The engine's shallow memories in LUT RAM (boards.targets.DISTRIBUTED_ROWS), or all of them
    # in block RAM (boards.targets.BLOCK_COMMANDS).
    overrides["script_after_read"] += "".join(
        "\n" + cmd for cmd in (*DISTRIBUTED_COMMANDS.get(board.family, ()),
                               *BLOCK_COMMANDS.get(board.family, ())))
    stop, watcher = threading.Event(), None
    if progress is not None:
        watcher = threading.Thread(target=_watch, args=(BuildProgress(out_dir, name), progress,
                                                        stop), daemon=True)
        watcher.start()
    base = overrides["synth_opts"]
    try:
        fallbacks = list(SYNTH_FALLBACKS[board.family])
        while True:
            try:
                _run_tools(board, top, name, out_dir, overrides)
                break
            except _SynthFault as fault:
                if not fallbacks:
                    raise
                # Yosys' ABC9 fault (docs/boards.md §4): another netlist for ABC9.
                opts = fallbacks.pop(0)
                if progress is not None:
                    progress(f"synthesis: Yosys' ABC9 fault ({fault.output}); again with "
                             f"{opts or 'no options'}")
                overrides["synth_opts"] = opts
    except subprocess.CalledProcessError as exc:
        log = _tool_log(out_dir, name)
        errors = [ln for ln in log.splitlines() if "ERROR" in ln] or log.splitlines()[-3:]
        raise UserError(f"the {board.name} build failed ({exc.cmd[0] if exc.cmd else 'tool'}): "
                        f"{' / '.join(e.strip() for e in errors[:3])}") from None
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()      # no progress line after the build's own output
    cells = parse_yosys_stat((out_dir / f"{name}.stat").read_text())
    report = json.loads((out_dir / f"{name}.report.json").read_text())
    figures = summarize(board, cells, report, f_sync)
    figures["seed"] = int(seed)
    if overrides["synth_opts"] != base:                # a fallback got through
        figures["synth_opts"] = overrides["synth_opts"]
    (out_dir / "report.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures
