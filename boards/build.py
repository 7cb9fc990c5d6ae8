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
from pathlib import Path

from sdtforge.errors import UserError
from sdtforge.sim.toolchain import setup_yowasp

__all__ = ["build_bitstream", "parse_yosys_stat", "summarize"]

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


def build_bitstream(board, top, out_dir, *, seed=1, name="sdtforge", f_sync):
    """Synthesize, place, route and pack ``top`` for ``board`` in ``out_dir``.

    Returns the :func:`summarize` dict, also written to ``out_dir/report.json``.

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
    platform = board.platform()
    overrides = {
        "nextpnr_opts": f"--seed {int(seed)} --timing-allow-fail --report {name}.report.json",
        "script_after_synth": f"tee -q -o {name}.stat stat",
    }
    if board.family == "ecp5":
        overrides["synth_opts"] = "-nodsp"
    try:
        # No source locations in the netlist: they hold absolute paths, and the bitstream must
        # not depend on where the checkout lives.
        platform.build(top, name=name, build_dir=str(out_dir), do_program=False,
                       emit_src=False, **overrides)
    except subprocess.CalledProcessError as exc:
        log = ""
        for suffix in (".tim", ".rpt"):
            path = out_dir / f"{name}{suffix}"
            if path.exists() and path.stat().st_mtime >= 0:
                log = path.read_text(errors="replace")
                if "ERROR" in log:
                    break
        errors = [ln for ln in log.splitlines() if "ERROR" in ln] or log.splitlines()[-3:]
        raise UserError(f"the {board.name} build failed ({exc.cmd[0] if exc.cmd else 'tool'}): "
                        f"{' / '.join(e.strip() for e in errors[:3])}") from None
    cells = parse_yosys_stat((out_dir / f"{name}.stat").read_text())
    report = json.loads((out_dir / f"{name}.report.json").read_text())
    figures = summarize(board, cells, report, f_sync)
    figures["seed"] = int(seed)
    (out_dir / "report.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures
