"""What a lane-serial write-back stage would cost in cycles (docs/architecture.md §5).

Usage: ``python bench/writeback.py [--images N] [--width W] [--out JSON]``.

A row of a spike-input convolution (output group, position, step) spends its event gather in
the encoder; a write-back stage that handles ``L`` of the ``P`` lanes per cycle, overlapped with
the next row's gather, makes the row cost ``max(gather, P / L)`` instead. For the shipped
digits-tiny and digits-small checkpoints (quantized here, first ``N`` test images) and
P ∈ {8, 32}, L ∈ {1, 2, 4, 8}, this prints and writes the summed row cycles against the plain
gather sum (the baseline of the same run) and the work bound ((synaptic accumulates +
first-layer MACs + neuron updates) / P). The gathers are the cycle model's
(``sim.cycles.row_gathers``), so the figures follow the engine's event count exactly; they price
the write-back only (not decode, pixel layer, stream LIFs or SDSA).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LANES = (8, 32)
SERIAL = (1, 2, 4, 8)


def measure(model, images, width):
    """``{P: {...}}`` for one integer model over ``images``."""
    from sdtforge.sim import cycles, golden

    res = golden.run(model, images, spikes=True)
    rows = [cycles.row_gathers(model, res.spikes, width, image=i) for i in range(len(images))]
    out = {}
    for p in LANES:
        def total(serial, p=p):
            per_row = p // serial
            return sum(-(-channels // p) * int(np.maximum(g, per_row).sum())
                       for image in rows for _, channels, g in image) / len(images)
        gather = total(p)       # L = P: a row costs its gather alone
        out[p] = {
            "work_bound": cycles.work_bound(res.totals(), p),
            "gather": gather,
            "serial": {lanes: {"cycles": total(lanes), "over_gather": total(lanes) / gather}
                       for lanes in SERIAL if lanes <= p},
        }
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5, help="test images per model")
    ap.add_argument("--width", type=int, default=16, help="spike word width W")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "writeback.json")
    args = ap.parse_args(argv)

    from sdtforge.model import SHIPPED_CHECKPOINTS, load_dataset
    from sdtforge.quantize.quantizer import quantize_checkpoint

    x, _ = load_dataset("digits", "test")
    results = {"images": args.images, "width": args.width, "models": {}}
    for name, path in SHIPPED_CHECKPOINTS.items():
        model = quantize_checkpoint(path)
        results["models"][name] = figures = measure(model, x[:args.images], args.width)
        for p, f in figures.items():
            cells = "  ".join(f"L={lanes}: {v['cycles']:>9.0f} ({v['over_gather']:.3f})"
                              for lanes, v in f["serial"].items())
            print(f"{name:<13} P={p:<3} work bound {f['work_bound']:>9.0f}  gather "
                  f"{f['gather']:>9.0f}  {cells}")
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
