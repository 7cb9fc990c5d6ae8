"""Simulated clock cycles per second of the generated accelerator: Verilator vs Icarus.

Usage: ``python bench/sim_speed.py [--images N] [--out JSON]``. Both simulators run the shipped
``digits-tiny`` on the same first ``N`` digits test images through the cocotb bench of
``sdtforge cosim`` (random stalls, load stream included); the rate is simulated cycles over
the bench's wall time (build excluded, reported separately). Both runs must be bit-exact.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sim_speed.json"))
    args = parser.parse_args(argv)

    from sdtforge.model import SHIPPED_CHECKPOINTS
    from sdtforge.model.data import load_dataset
    from sdtforge.quantize.quantizer import quantize_checkpoint
    from sdtforge.sim.cosim import cosim

    images = np.asarray(load_dataset("digits", "test")[0][:args.images], np.uint8)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="sdtforge-simspeed-") as tmp:
        model = quantize_checkpoint(SHIPPED_CHECKPOINTS["digits-tiny"])
        for sim in ("verilator", "icarus"):
            res = cosim(model, images, sim=sim, out=Path(tmp) / sim)
            assert res.bit_exact == len(images), f"{sim}: not bit-exact"
            rows[sim] = {"build_s": round(res.build_s, 2), "run_s": round(res.run_s, 2),
                         "sim_cycles": res.sim_cycles,
                         "cycles_per_second": round(res.cycles_per_second, 1)}
            print(f"{sim:<10} build {res.build_s:6.1f} s  run {res.run_s:7.1f} s  "
                  f"{res.sim_cycles} cycles  {res.cycles_per_second:>10,.0f} cycles/s")
    ratio = rows["verilator"]["cycles_per_second"] / rows["icarus"]["cycles_per_second"]
    print(f"verilator / icarus: {ratio:.1f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"images": args.images, "sims": rows,
                               "verilator_over_icarus": round(ratio, 2)}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
