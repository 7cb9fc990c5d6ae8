"""Energy per inference three ways: the SDT paper's method, SDSA's module ratio with Q/K/V
generation, and a memory-inclusive estimate (``sim/energy.py``, ``docs/integer-semantics.md``
§9).

Usage: ``python bench/energy.py [--rate R] [--images N] [--out JSON]``. Rows: the shipped
digits-tiny (quantized, the digits test split) and the paper's ImageNet 8-512 shape as a
synthetic model (``sdtforge synth --preset imagenet-8-512 --firing-rate R``; random weights
tuned to the rate: a sizing aid, not an accuracy claim). Beside them, the paper's own
accounting on the 8-512 shape at uniform rates, and the rate at which it gives its 87.2×.
Prints a Markdown table; writes the JSON.
"""

import argparse
import json
from pathlib import Path

PAPER_RATIO = 87.2


def _row(name, model, images):
    from sdtforge.sim import energy
    from sdtforge.sim.evaluate import run_batched

    _, _, counts = run_batched(model, images)
    n = len(images)
    per_image = {k: {kk: v / n for kk, v in c.items()} for k, c in counts.items()}
    paper = energy.energy(per_image)
    mem = energy.memory_energy(model, per_image)
    mem.pop("per_layer_pj")
    sdsa = energy.sdsa_ratio_from_counts(model, per_image)
    first = next(iter(sdsa.values()))
    return {
        "model": name, "images": n,
        "paper_uj": paper["total_uj"], "paper_mac_uj": paper["mac_uj"],
        "paper_ac_uj": paper["ac_uj"],
        "with_memory_uj": mem["total_uj"], "memory_uj": mem["memory_uj"],
        "by_memory_uj": mem["by_memory_uj"], "sizes_bytes": mem["sizes_bytes"],
        "kv_rate_block0": first["kv_rate"],
        "operator_ratio_block0": first["ratio"],
        "module_ratio_block0": first["module_ratio"],
        "module_ratio_mean": sum(s["module_ratio"] for s in sdsa.values()) / len(sdsa),
        "sdsa": sdsa,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.1,
                        help="firing rate of the synthetic 8-512 model (default 0.1)")
    parser.add_argument("--images", type=int, default=2,
                        help="random inputs of the synthetic model")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "energy.json"))
    args = parser.parse_args(argv)

    from sdtforge.model import SHIPPED_CHECKPOINTS, load_dataset
    from sdtforge.quantize.quantizer import quantize_checkpoint
    from sdtforge.quantize.synthetic import synth_model
    from sdtforge.sim import energy
    from sdtforge.sim.latency import sample_images

    tiny = quantize_checkpoint(SHIPPED_CHECKPOINTS["digits-tiny"])
    digits, _ = load_dataset("digits", "test")
    rows = [_row("digits-tiny (trained, digits test split)", tiny, digits)]
    big = synth_model("imagenet-8-512", args.rate, seed=0, images=1,
                      progress=lambda line: print("  synth:", line, flush=True))
    reached = big.provenance["synthetic"]["firing_rate"]
    rows.append(_row(f"imagenet-8-512 (synthetic, rate {reached:.3f})", big,
                     sample_images(big, args.images)))
    n, d, t = 196, 512, 4
    paper = {
        "shape": {"tokens": n, "channels": d, "T": t},
        "module_ratio_at_rate": {str(r): energy.module_ratio(n, d, t, r)
                                 for r in (0.01, 0.0184, 0.05, 0.1, 0.2)},
        "rate_for_87.2x": energy.rate_for_module_ratio(PAPER_RATIO, n, d, t),
    }
    result = {"rows": rows, "paper_accounting_8_512": paper,
              "command": "python bench/energy.py" + (f" --rate {args.rate}"
                                                     if args.rate != 0.1 else "")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")

    print("| model | paper method (µJ) | with memory (µJ) | memory share | SDSA operator "
          "ratio | SDSA module ratio (with Q/K/V) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['paper_uj']:.4g} | {r['with_memory_uj']:.4g} | "
              f"{r['memory_uj'] / r['with_memory_uj']:.0%} | {r['operator_ratio_block0']:.0f}× | "
              f"{r['module_ratio_block0']:.2f}× (mean over blocks {r['module_ratio_mean']:.2f}×) |")
    print(f"\npaper's accounting, 8-512 (N={n}, D={d}, T={t}), uniform rate r (K∧V rate = r): "
          + ", ".join(f"r={k}: {v:.1f}×" for k, v in paper["module_ratio_at_rate"].items())
          + f"; {PAPER_RATIO}× at r = {paper['rate_for_87.2x']:.4f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
