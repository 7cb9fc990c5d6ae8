"""iCE40 cost of every ``sdtforge.hdl`` unit for P ∈ {4, 8, 16} lanes (Yosys ``synth_ice40``).

Prints a table and writes ``bench/results/unit_cost.json``. Word-wide units (event encoder,
SDSA, spike pool) use ``W = P`` channels per word, plus the event encoder at ``W = 32`` (one
word per digits-tiny row). Sizes follow digits-tiny (D = 32, 8×8 input, 4·D MLP hidden):
membranes for the largest layer (2048 neurons), 20-bit accumulators, 8-bit weights read from
an external port (SPRAM on the UP5K, so no EBR is counted for them).

Usage: ``python bench/unit_cost.py [--lanes 4 8 16] [--json PATH]``
"""

import argparse
import json
from pathlib import Path

from sdtforge.hdl.event_encoder import EventEncoder
from sdtforge.hdl.lif import LIFUnit
from sdtforge.hdl.pe_array import PEArray
from sdtforge.hdl.pool import IntMaxPool, SpikeMaxPool
from sdtforge.hdl.residual import AlignAdd
from sdtforge.hdl.sdsa import SDSAUnit
from sdtforge.hdl.synth import yosys_stats

UNITS = {
    "EventEncoder(W=P)": lambda p: EventEncoder(p, 12),
    "EventEncoder(W=32)": lambda p: EventEncoder(32, 8),
    # The weight rows arrive on the PE array's w_rsp stream (SPRAM on the iCEBreaker).
    "PEArray(ext. weights)": lambda p: PEArray(p, 20, weight_width=8, bias_width=16,
                                               weight_depth=4096, bias_depth=128 // p),
    "LIFUnit(2048 neurons)": lambda p: LIFUnit(p, 2048 // p, 20, theta_width=16,
                                               theta_depth=128 // p),
    "SDSAUnit(D=32, lif)": lambda p: SDSAUnit(32, p, 16, mode="lif", theta_width=8),
    "SDSAUnit(D=32, or)": lambda p: SDSAUnit(32, p, 16, mode="or"),
    "SpikeMaxPool(W=P)": lambda p: SpikeMaxPool(p),
    "IntMaxPool": lambda p: IntMaxPool(p, 20),
    "AlignAdd": lambda p: AlignAdd(p, 20, 20, 7),
}


def summary(cells):
    return {
        "SB_LUT4": cells.get("SB_LUT4", 0),
        "SB_CARRY": cells.get("SB_CARRY", 0),
        "SB_DFF*": sum(n for c, n in cells.items() if c.startswith("SB_DFF")),
        "EBR": cells.get("SB_RAM40_4K", 0),
        "SB_MAC16": cells.get("SB_MAC16", 0),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--lanes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--json", default="bench/results/unit_cost.json")
    args = parser.parse_args()
    results = {}
    for name, build in UNITS.items():
        for p in args.lanes:
            if name == "EventEncoder(W=32)" and p != args.lanes[0]:
                continue
            key = name if name == "EventEncoder(W=32)" else f"{name} P={p}"
            results[key] = summary(yosys_stats(build(p))["ice40"])
            row = results[key]
            print(f"{key:34s} " + "  ".join(f"{c}={n}" for c, n in row.items()), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
