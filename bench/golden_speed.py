"""Golden-model throughput vs the float PyTorch model on the same batch, in the same run.

Usage: ``python bench/golden_speed.py [CKPT] [--batch N] [--repeats R] [--out JSON]``. With no
checkpoint the shipped ``digits-tiny`` is used. Both models run single-process on the same
uint8 test images; the ratio is golden images/s divided by float images/s.
"""

import argparse
import json
import os
import time
from pathlib import Path


def _best(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--batch", type=int, default=360)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                              "golden_speed.json"))
    args = parser.parse_args(argv)

    import torch

    from sdtforge.model import SHIPPED_CHECKPOINTS, load_dataset
    from sdtforge.quantize.quantizer import load_float, quantize_checkpoint
    from sdtforge.sim import golden

    ckpt_path = args.checkpoint or SHIPPED_CHECKPOINTS["digits-tiny"]
    model, ckpt, _ = load_float(ckpt_path)
    qmodel = quantize_checkpoint(ckpt_path)
    images, _ = load_dataset(ckpt.get("dataset") or "digits", "test")
    images = images[:args.batch]
    x = torch.from_numpy(images)

    def run_float():
        with torch.no_grad():
            model(x)

    def run_golden():
        golden.run(qmodel, images)

    run_float()
    run_golden()  # warm-up: allocator, BLAS threads
    t_float = _best(run_float, args.repeats)
    t_golden = _best(run_golden, args.repeats)
    result = {
        "checkpoint": Path(ckpt_path).name, "batch": len(images), "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "float_images_per_s": len(images) / t_float,
        "golden_images_per_s": len(images) / t_golden,
        "ratio_golden_over_float": t_float / t_golden,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"float  {result['float_images_per_s']:9.1f} images/s")
    print(f"golden {result['golden_images_per_s']:9.1f} images/s")
    print(f"ratio  {result['ratio_golden_over_float']:.2f}x (golden / float)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
