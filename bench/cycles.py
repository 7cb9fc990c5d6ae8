"""Accelerator cycles per image vs the work bound and a dense engine, per model shape.

Usage: ``python bench/cycles.py [--images N] [--lanes P] [--width W] [--rtl] [--out JSON]``.

Cases: the shipped ``digits-tiny`` (trained, real test images), ``digits-small`` (random
weights, real test images) and the paper's ``cifar10-2-256`` shape (random weights, random
images, thresholds scaled so that the firing rate is in the range trained SDTs show). Cycles
come from the cycle model (``sim/cycles.py``, equal to the RTL's count on every co-simulated
image); with ``--rtl`` the ``digits-tiny`` images are also run on the Verilog (Verilator) and the
measured counts are reported beside the prediction. Work bound: (synaptic accumulates +
first-layer MACs + neuron updates) / P; dense bound: every synapse every step with the same P
lanes and no zero skipping. Targets (issue 5): cycles ≤ 1.5 × work bound, speed-up over dense
≥ 3×.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def synthetic(name, seed, target_rate, images):
    """A random model of preset ``name`` whose firing rate is near ``target_rate``."""
    from sdtforge.quantize.synthetic import preset_config, random_model
    from sdtforge.sim import golden
    config = preset_config(name)
    chosen = None
    for theta_max in (16, 64, 256, 1024, 4096):
        model = random_model(config, seed=seed, theta_max=theta_max)
        ref = golden.run(model, images[:1])
        tot = ref.totals()
        rate = tot["spikes"] / max(tot["neuron_updates"], 1)
        chosen = model
        if rate <= target_rate:
            break
    return chosen


def _measure(label, model, images, lanes, width, rtl=None):
    from sdtforge.sim import cycles, golden, latency
    ref = golden.run(model, images, spikes=True)
    tot = ref.totals()
    predicted = [p["total"] for p in latency.predictions(model, ref, lanes, width)]
    mean = float(np.mean(predicted))
    work = cycles.work_bound(tot, lanes)
    dense = cycles.dense_bound(model, lanes)
    row = {
        "case": label, "images": len(images), "lanes": lanes, "width": width,
        "firing_rate": tot["spikes"] / max(tot["neuron_updates"], 1),
        "predicted_cycles": mean, "work_bound": work, "dense_bound": dense,
        "cycles_over_work": mean / work, "speedup_over_dense": dense / mean,
        "meets_1.5x_work": mean <= 1.5 * work, "meets_3x_dense": dense / mean >= 3.0,
    }
    if rtl is not None:
        row["rtl_cycles"] = float(np.mean(rtl))
        row["rtl_equals_predicted"] = list(rtl) == predicted
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.15,
                        help="target firing rate of the synthetic models")
    parser.add_argument("--rtl", action="store_true",
                        help="also measure digits-tiny on the Verilog (Verilator)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cycles.json"))
    args = parser.parse_args(argv)

    from sdtforge.model import SHIPPED_CHECKPOINTS
    from sdtforge.model.data import load_dataset
    from sdtforge.quantize.quantizer import quantize_checkpoint
    from sdtforge.sim.cosim import cosim

    digits, _ = load_dataset("digits", "test")
    digits = np.asarray(digits[:args.images], np.uint8)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sdtforge-bench-") as tmp:
        tiny = quantize_checkpoint(SHIPPED_CHECKPOINTS["digits-tiny"])
        rtl = None
        if args.rtl:
            res = cosim(tiny, digits, sim="verilator", out=Path(tmp) / "verilator",
                        lanes=args.lanes, width=args.width, seed=args.seed)
            assert res.bit_exact == len(digits), "RTL differs from the golden model"
            rtl = [r.cycles for r in res.images]
        rows.append(_measure("digits-tiny (trained)", tiny, digits, args.lanes, args.width, rtl))
    small = synthetic("digits-small", args.seed, args.rate, digits)
    rows.append(_measure("digits-small (random weights)", small, digits, args.lanes,
                         args.width))
    rng = np.random.default_rng(args.seed)
    cifar_images = rng.integers(0, 256, (min(args.images, 2), 3, 32, 32), dtype=np.uint8)
    cifar = synthetic("cifar10-2-256", args.seed, args.rate, cifar_images)
    rows.append(_measure("cifar10-2-256 (synthetic)", cifar, cifar_images, args.lanes,
                         args.width))

    print(f"{'case':<32} {'rate':>5} {'cycles':>11} {'work':>11} {'dense':>12} "
          f"{'cyc/work':>8} {'dense/cyc':>9}")
    for r in rows:
        rtl_note = f" (RTL {r['rtl_cycles']:.0f})" if "rtl_cycles" in r else ""
        print(f"{r['case']:<32} {r['firing_rate']:>5.2f} {r['predicted_cycles']:>11.0f} "
              f"{r['work_bound']:>11.0f} {r['dense_bound']:>12.0f} "
              f"{r['cycles_over_work']:>8.2f} {r['speedup_over_dense']:>9.2f}{rtl_note}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
