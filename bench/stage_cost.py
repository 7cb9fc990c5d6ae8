"""The engine's logic per stage: iCE40 LUT4s, carries, flip-flops and block RAMs per component.

Usage: ``python bench/stage_cost.py [--lanes 1 2 4 8] [--out JSON]``.

The accelerator is synthesized for the shipped digits-tiny at the iCEBreaker's configuration
(SPRAM weights, the board's word width, a lane-serial write-back: ``Board.writeback_lanes``)
for each lane count, with its hierarchy kept
(``sdtforge.hdl.synth.module_stats``: ``synth_ice40 -noflatten``, LUTs mapped by ``abc -lut 4``,
so the totals come out a little above a flat build; an area breakdown per stage, not a
sign-off). ``top`` is what the controller itself still holds (its FSM, the map address
generators, the descriptor decode, the pixel and head adders, the cycle counter); every other
row is a stage component (``docs/architecture.md`` §1). The per-lane cost of a stage is the
difference between two lane counts.
"""

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(model, lanes):
    """``{module: {"SB_LUT4", "SB_CARRY", "FF", "EBR"}}`` of the iCEBreaker engine at ``lanes``."""
    import dataclasses

    from sdtforge.boards import targets
    from sdtforge.hdl.accelerator import Accelerator
    from sdtforge.hdl.synth import module_stats

    board = targets.get_board("icebreaker")
    # Lift the fit check's logic and block RAM limits: a breakdown, not a build.
    roomy = dataclasses.replace(board, brams=10**6, luts=10**9)
    plan = targets.plan_board(model, roomy, lanes=lanes)
    return module_stats(Accelerator(plan.config))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "stage_cost.json"))
    args = parser.parse_args(argv)

    from sdtforge.model import SHIPPED_CHECKPOINTS
    from sdtforge.quantize.quantizer import quantize_checkpoint

    model = quantize_checkpoint(SHIPPED_CHECKPOINTS["digits-tiny"])
    rows = {lanes: measure(model, lanes) for lanes in args.lanes}
    names = sorted(set().union(*rows.values()))
    head = "".join(f" | P={lanes} LUT4   FF  EBR" for lanes in args.lanes)
    print(f"{'module':<18}{head}")
    for name in [*names, "total"]:
        line = f"{name:<18}"
        for lanes in args.lanes:
            mods = rows[lanes]
            if name == "total":
                m = {k: sum(v[k] for v in mods.values()) for k in ("SB_LUT4", "FF", "EBR")}
            else:
                m = mods.get(name, {"SB_LUT4": 0, "FF": 0, "EBR": 0})
            line += f" | {m['SB_LUT4']:>9} {m['FF']:>4} {m['EBR']:>4}"
        print(line)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(
        {"board": "icebreaker", "model": "digits-tiny",
         "lanes": {str(k): v for k, v in rows.items()}}, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
