"""ASIC-style estimate of the accelerator core: generic gates plus SRAM macros.

Yosys synthesizes the core to a generic gate library (``abc -g``) with every memory kept as a
separate SRAM macro: ``memory -nomap`` leaves each ``$mem_v2`` cell whole, and those cells are
counted as macros (rows × bits) rather than flattened into flip-flops. Gates are weighed in
NAND2 equivalents, the usual area unit of standard-cell libraries:

=========  ====  =====================================================
cell       NAND2 why
=========  ====  =====================================================
NOT        0.67  one transistor pair (2 of a NAND2's 4 transistors … 0.67 with sizing)
NAND, NOR  1.0   the unit
AND, OR    1.33  NAND/NOR + inverter
XOR, XNOR  2.33  the usual 10-transistor cell
MUX        2.33  transmission-gate 2:1 mux
DFF        4.67  master-slave flop without reset (≈ 4.5–5 NAND2 in common libraries)
DFF+R/E    5.67  a reset or enable adds about one NAND2
=========  ====  =====================================================

The figure is an estimate for comparing configurations, not a sign-off area.
"""

import re
import subprocess
import tempfile
from pathlib import Path

from amaranth.back import rtlil

from sdtforge.hdl.synth import yosys_binary
from sdtforge.hdl.verilog import zero_memories_uninitialised

__all__ = ["NAND2_WEIGHTS", "asic_estimate"]

NAND2_WEIGHTS = {
    "$_NOT_": 0.67, "$_NAND_": 1.0, "$_NOR_": 1.0, "$_AND_": 1.33, "$_OR_": 1.33,
    "$_XOR_": 2.33, "$_XNOR_": 2.33, "$_MUX_": 2.33, "$_BUF_": 0.0,
    "$_ANDNOT_": 1.33, "$_ORNOT_": 1.33,
}
_DFF_PLAIN, _DFF_EXTRA = 4.67, 5.67

_MEM = re.compile(r"^\s*cell \$mem_v2 (\S+)$")


def _weight(cell):
    if cell in NAND2_WEIGHTS:
        return NAND2_WEIGHTS[cell]
    if cell.startswith(("$_DFF_", "$_SDFF", "$_DFFE", "$_SDFFE", "$_SDFFCE", "$_DFFSR",
                        "$_ALDFF", "$_DLATCH")):
        return _DFF_PLAIN if cell in ("$_DFF_P_", "$_DFF_N_") else _DFF_EXTRA
    raise ValueError(f"no NAND2 weight for cell type {cell!r}")


def _memories(json_netlist):
    macros = []
    for module in json_netlist["modules"].values():
        for name, cell in module.get("cells", {}).items():
            if cell["type"] != "$mem_v2":
                continue
            p = cell["parameters"]
            rows, bits = int(p["SIZE"], 2), int(p["WIDTH"], 2)
            macros.append({"name": p.get("MEMID", name).lstrip("\\"), "rows": rows,
                           "bits": bits, "total_bits": rows * bits,
                           "read_ports": int(p["RD_PORTS"], 2),
                           "write_ports": int(p["WR_PORTS"], 2)})
    return sorted(macros, key=lambda m: m["name"])


def asic_estimate(component):
    """Synthesize ``component`` to generic gates with memories as macros.

    Returns
    -------
    dict
        ``cells`` (type → count, memories excluded), ``nand2`` (weighted gate estimate),
        ``flops``, ``macros`` (list of ``name``/``rows``/``bits``/``total_bits``/ports) and
        ``sram_bits``.
    """
    import json

    # Memories that start empty carry no initial rows (millions for a paper-scale model).
    with zero_memories_uninitialised():
        text = rtlil.convert(component, name="top", emit_src=False)
    script = [
        "read_rtlil top.il", "hierarchy -top top", "proc", "flatten", "opt -fast",
        # The macros' sizes and ports, without their (undefined) initial contents: an
        # INIT parameter of tens of Mbit breaks the JSON writer (imagenet-8-512).
        "memory -nomap", "opt -fast", "design -save full", "setparam -unset INIT t:$mem_v2",
        "write_json mem.json", "design -load full",
        "synth -flatten -run coarse", "memory -nomap",
        "techmap", "opt -fast", "abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX", "opt_clean",
        "tee -q -o stat.txt stat",
    ]
    with tempfile.TemporaryDirectory(prefix="sdtforge-asic-") as tmp:
        Path(tmp, "top.il").write_text(text)
        subprocess.run([yosys_binary(), "-q", "-p", "; ".join(script)], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        stat = Path(tmp, "stat.txt").read_text()
        macros = _memories(json.loads(Path(tmp, "mem.json").read_text()))
    from .build import parse_yosys_stat
    cells = {c: n for c, n in parse_yosys_stat(stat).items()
             if c not in ("$mem_v2", "$scopeinfo")}
    nand2 = sum(_weight(c) * n for c, n in cells.items())
    flops = sum(n for c, n in cells.items() if _weight(c) >= _DFF_PLAIN)
    return {"cells": cells, "nand2": round(nand2), "flops": flops, "macros": macros,
            "sram_bits": sum(m["total_bits"] for m in macros)}
