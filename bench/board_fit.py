"""How far the shipped digits-tiny is from fitting the iCEBreaker (iCE40 UP5K).

Usage: ``python bench/board_fit.py [--lanes 2 4] [--modules] [--keep DIR] [--out JSON]``.

For each lane count the real iCEBreaker top (accelerator with SPRAM weights, UART link, PLL,
LEDs) is built with the fit check's capacity limits lifted, so nextpnr places as much as it can
and reports what the design needs; a design over the device stops there, after the utilization
report. Printed and written per lane count: logic cells, LUT4s, flip-flops, block RAMs, SPRAMs
and DSPs, with the ratio of the need to the device's capacity (the baseline of this bench), and
the fit check's estimate beside the tools' count. ``--modules`` adds the accelerator's LUT4 /
flip-flop breakdown per module (``sdtforge.hdl.synth.module_stats``). ``--keep DIR`` keeps each
build in ``DIR/lanes-P`` (the netlist ``sdtforge.json`` for ``bench/ff_packing.py``, the tools'
logs), where it is otherwise removed.
"""

import argparse
import contextlib
import dataclasses
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_UTIL = re.compile(r"^Info:\s+(ICESTORM_\w+):\s+(\d+)/\s*(\d+)")


def _utilization(tim):
    """``{bel type: (used, available)}`` from nextpnr's log (also when placement failed)."""
    util = {}
    for line in tim.splitlines():
        match = _UTIL.match(line)
        if match:
            util[match[1]] = (int(match[2]), int(match[3]))
    return util


def measure(model, lanes, modules=False, keep=None):
    from sdtforge.boards import targets
    from sdtforge.boards.build import build_bitstream, parse_yosys_stat
    from sdtforge.boards.image import model_image
    from sdtforge.errors import UserError

    board = targets.get_board("icebreaker")
    # Lift the block RAM and logic limits of the fit check (the SPRAM limits stay: a model
    # whose weights do not fit the SPRAMs cannot be built at all).
    roomy = dataclasses.replace(board, brams=10**6, luts=10**9)
    plan = targets.plan_board(model, roomy, lanes=lanes)
    img = model_image(plan.compiled)
    top = board.top(plan.config, image_bytes=img.image_bytes, num_classes=img.num_classes)
    row = {"lanes": lanes, "lc_estimate": plan.luts_estimate, "bram_estimate": plan.brams}
    with contextlib.ExitStack() as stack:
        if keep is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="sdtforge-fit-"))
        else:
            tmp = Path(keep, f"lanes-{lanes}")
            tmp.mkdir(parents=True, exist_ok=True)
        try:
            figures = build_bitstream(board, top, tmp, seed=1, f_sync=top.f_sync)
            row["placed"] = True
            row["fmax_mhz"] = figures["fmax_mhz"]
        except UserError:
            row["placed"] = False
            row["fmax_mhz"] = None
        util = _utilization(Path(tmp, "sdtforge.tim").read_text())
        cells = parse_yosys_stat(Path(tmp, "sdtforge.stat").read_text())
    for key, name in (("lc", "ICESTORM_LC"), ("bram", "ICESTORM_RAM"),
                      ("spram", "ICESTORM_SPRAM"), ("dsp", "ICESTORM_DSP")):
        used, available = util.get(name, (0, 0))
        row[key], row[f"{key}_available"] = used, available
    row["lut4"] = cells.get("SB_LUT4", 0)
    row["ff"] = sum(n for c, n in cells.items() if c.startswith("SB_DFF"))
    row["lc_over_capacity"] = round(row["lc"] / row["lc_available"], 3)
    row["bram_over_capacity"] = round(row["bram"] / row["bram_available"], 3)
    if modules:
        from sdtforge.hdl.accelerator import Accelerator
        from sdtforge.hdl.synth import module_stats
        row["modules"] = module_stats(Accelerator(plan.config))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--lanes", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--modules", action="store_true",
                        help="add the accelerator's per-module LUT4 / flip-flop breakdown")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="keep each build in DIR/lanes-P (otherwise removed)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "board_fit.json"))
    args = parser.parse_args(argv)

    from sdtforge.model import SHIPPED_CHECKPOINTS
    from sdtforge.quantize.quantizer import quantize_checkpoint

    model = quantize_checkpoint(SHIPPED_CHECKPOINTS["digits-tiny"])
    rows = []
    print(f"{'lanes':>5} {'LC':>13} {'LC/cap':>7} {'est.':>6} {'LUT4':>6} {'FF':>6} "
          f"{'EBR':>7} {'est.':>5} {'SPRAM':>5} {'DSP':>3}  placed")
    for lanes in args.lanes:
        row = measure(model, lanes, modules=args.modules, keep=args.keep)
        rows.append(row)
        print(f"{lanes:>5} {row['lc']:>6}/{row['lc_available']:<6} "
              f"{row['lc_over_capacity']:>7.2f} {row['lc_estimate']:>6} {row['lut4']:>6} "
              f"{row['ff']:>6} {row['bram']:>3}/{row['bram_available']:<3} "
              f"{row['bram_estimate']:>5} {row['spram']:>5} {row['dsp']:>3}  "
              f"{'yes' if row['placed'] else 'no'}", flush=True)
        for name, m in sorted(row.get("modules", {}).items()):
            print(f"      {name:<22} SB_LUT4 {m['SB_LUT4']:>5}  FF {m['FF']:>5}  "
                  f"EBR {m['EBR']:>2}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"board": "icebreaker", "model": "digits-tiny",
                                          "rows": rows}, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
