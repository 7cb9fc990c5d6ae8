"""Which flip-flops of an iCE40 build cannot share a logic cell with a LUT, per register.

Usage: ``python bench/ff_packing.py BUILD/sdtforge.json [--top N] [--out JSON]``.

An iCE40 logic cell holds one LUT4 and one flip-flop; nextpnr packs a flip-flop into the cell of
the LUT that drives its ``D`` input only when that LUT drives nothing else. A flip-flop fed by
another register, a memory, a carry or a LUT with fan-out takes a logic cell of its own (the
place-and-route log's "LCs used as DFF only"). This reads the synthesized netlist of
``sdtforge build`` (``BUILD/sdtforge.json``, Yosys JSON) and counts the flip-flops by what drives
their ``D`` input: ``lut-packable`` (a LUT driving this flip-flop alone), ``lut-fanout`` (a LUT
driving others too), a cell type (``SB_DFFESR`` …: another register; ``SB_CARRY``), ``input``
or ``const``; then the registers (net names, bit index dropped) with the most flip-flops that
are not packable. ``docs/architecture.md`` §5 reads it.
"""

import argparse
import collections
import json
import re
import sys
from pathlib import Path

from sdtforge.hdl.synth import YosysNetlist


def classify(netlist):
    """``(counts, registers)``: flip-flops per driver kind, and unpackable ones per register."""
    net = YosysNetlist(netlist)
    counts, registers = collections.Counter(), collections.Counter()
    for name, cell in net.cells.items():
        if not cell["type"].startswith("SB_DFF"):
            continue
        (d,), (q,) = cell["connections"]["D"], cell["connections"]["Q"]
        driver = None if isinstance(d, str) else net.driver_type(d)
        if isinstance(d, str):
            kind = "const"
        elif driver is None:
            kind = "input"
        elif driver == "SB_LUT4":
            kind = "lut-packable" if net.fanout[d] == 1 else "lut-fanout"
        else:
            kind = driver
        counts[kind] += 1
        if kind != "lut-packable":
            register = re.sub(r"(\[\d+\])+$", "", net.names.get(q, name)).split("_SB_")[0]
            registers[(register, kind)] += 1
    return counts, registers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("netlist", type=Path, help="Yosys JSON netlist (BUILD/sdtforge.json)")
    parser.add_argument("--top", type=int, default=25, help="registers to list")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    try:
        netlist = json.loads(args.netlist.read_text())
    except (OSError, ValueError) as exc:
        print(f"ff_packing: cannot read {args.netlist}: {exc}", file=sys.stderr)
        return 2
    counts, registers = classify(netlist)
    total = sum(counts.values())
    print(f"{total} flip-flops; D driven by: " +
          ", ".join(f"{k} {v}" for k, v in counts.most_common()))
    print(f"{'flip-flops':>10}  {'driver':<12} register")
    for (register, kind), n in registers.most_common(args.top):
        print(f"{n:>10}  {kind:<12} {register}")
    if args.out:
        args.out.write_text(json.dumps({
            "flip_flops": total, "by_driver": dict(counts.most_common()),
            "unpackable": [{"register": r, "driver": k, "flip_flops": n}
                           for (r, k), n in registers.most_common()]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
