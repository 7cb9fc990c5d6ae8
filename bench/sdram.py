"""Weights in the ULX3S's SDRAM: latency per image with the weight stream's stalls.

Usage: ``python bench/sdram.py [--lanes 16 32 64] [--events 2] [--clocks 50 75 100]
[--images N] [--out JSON]``.

Cases: a synthetic ``cifar10-2-256`` (``quantize.synthetic.synth_model``, firing rate 0.10,
seed 0; one image, as in ``docs/boards.md`` §5b) and the shipped ``digits-tiny`` and
``digits-small`` checkpoints quantized to 8 bits (the first ``--images`` test images, figures
averaged). For each lane count ``P`` (spike words of ``max(32, P)`` bits: ``P`` cannot exceed
the word width) and engine clock (the SDRAM on the same clock): weight bytes per image, the
on-chip cycle model's count (``sim.cycles.predict``), the SDRAM's busy cycles, the cycles
compute waits for a weight tile (``sim.sdram.weight_stream``: tiles of one output group,
double-buffered, on the AS4C32M16SB-7), the total and its latency, and the double buffer's
ECP5 DP16KD blocks beside the blocks of the other on-chip memories (the fit check's count,
weights left out), at ``--events`` events per PE command (2, as the ULX3S builds: the window's
two ports); and the same for the tile prefetch the RTL has (``ring_*``: its default
window, its first tiles fetched before the image; ``sdram.schedule(..., window, warm=True)``).
A model, not a measurement: ``docs/boards.md`` §5e compares it with the RTL in co-simulation.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def _cases(images):
    """``[(label, model, uint8 images)]``."""
    from sdtforge.model import SHIPPED_CHECKPOINTS
    from sdtforge.quantize.quantizer import quantize_checkpoint
    from sdtforge.quantize.synthetic import synth_model
    from sdtforge.sim.latency import sample_images

    out = []
    _log("synth cifar10-2-256 (firing rate 0.10, seed 0)")
    cifar = synth_model("cifar10-2-256", 0.1, seed=0)
    out.append(("cifar10-2-256 (synthetic, rate 0.10)", cifar, sample_images(cifar, 1)))
    for name in ("digits-tiny", "digits-small"):
        _log(f"quantize {name}")
        model = quantize_checkpoint(SHIPPED_CHECKPOINTS[name])
        out.append((f"{name} (8-bit)", model, sample_images(model, images)))
    return out


def _other_blocks(config):
    """DP16KD blocks of the on-chip memories other than the weights (ULX3S-85F fit check)."""
    from sdtforge.boards.targets import block_ram_usage, get_board

    usage = block_ram_usage(config, get_board("ulx3s-85f"))
    return sum(blocks for name, (_, _, blocks) in usage.items() if name != "weights")


def measure(label, model, images, lanes, clocks, events=1):
    """One row per clock for ``model`` at ``lanes``."""
    from sdtforge.boards.targets import get_board, memory_blocks
    from sdtforge.hdl.compile import derive_config
    from sdtforge.hdl.weight_tiles import prefetch_window
    from sdtforge.sim import golden, sdram

    width = max(32, lanes)
    result = golden.run(model, images, spikes=True)
    # The ULX3S's configuration: its stream memory and weight rows read through registers.
    board = get_board("ulx3s-85f")
    config = derive_config(model, lanes=lanes, width=width, events=events,
                           stream_latency=board.stream_latency,
                           weight_latency=board.weight_latency)
    other = _other_blocks(config)
    rows = []
    for clock in clocks:
        per = [sdram.weight_stream(model, result.spikes, lanes, width, clock, image=i,
                                   config=config) for i in range(len(images))]
        ring = [sdram.weight_stream(model, result.spikes, lanes, width, clock, image=i,
                                    config=config, window="rtl", warm=True)
                for i in range(len(images))]
        mean = {k: float(np.mean([p[k] for p in per]))
                for k in ("compute_cycles", "sdram_busy_cycles", "stall_cycles", "first_stall",
                          "total_cycles", "latency_ms")}
        buf = per[0]["double_buffer"]
        window = prefetch_window(buf["rows"] // 2)
        buf_blocks = memory_blocks(buf["rows"], buf["row_bits"], "ecp5")
        names = sorted({n for p in per for n in p["stalls_by_descriptor"]})
        by_name = {n: float(np.mean([p["stalls_by_descriptor"].get(n, 0) for p in per]))
                   for n in names}
        rows.append({
            "case": label, "images": len(images), "lanes": lanes, "width": width,
            "events": events,
            "clock_mhz": clock, "sdram_mhz": clock, "weight_bytes": per[0]["weight_bytes"],
            "tiles": per[0]["tiles"], **mean,
            "stall_fraction": mean["stall_cycles"] / mean["total_cycles"],
            "stalls_by_descriptor": by_name,
            "double_buffer_bits": buf["bits"], "double_buffer_dp16kd": buf_blocks,
            "other_dp16kd": other,
            "meets_40ms": mean["latency_ms"] <= 40.0,
            "ring_window_rows": window,
            "ring_dp16kd": memory_blocks(window, buf["row_bits"], "ecp5"),
            **{f"ring_{k}": float(np.mean([p[k] for p in ring]))
               for k in ("stall_cycles", "total_cycles", "latency_ms")},
        })
        _log(f"  {label} P={lanes} {clock} MHz: {mean['total_cycles']:.0f} cycles "
             f"({mean['stall_cycles']:.0f} stalls), {mean['latency_ms']:.2f} ms")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--events", type=int, choices=(1, 2), default=2,
                        help="events per PE command (2: as the ULX3S builds)")
    parser.add_argument("--clocks", type=float, nargs="+", default=[50.0, 75.0, 100.0],
                        help="engine (and SDRAM) clocks in MHz")
    parser.add_argument("--images", type=int, default=10,
                        help="digits test images to average over (cifar10: one)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "sdram.json"))
    args = parser.parse_args(argv)

    from sdtforge.sim import sdram

    rows = []
    for label, model, images in _cases(args.images):
        for lanes in args.lanes:
            _log(f"{label}: P = {lanes}")
            rows += measure(label, model, images, lanes, args.clocks, args.events)
    chip = sdram.AS4C32M16SB_7
    bandwidth = [{"clock_mhz": c, "peak_mb_s": sdram.peak_bandwidth(c, chip) / 1e6,
                  "sustained_mb_s": sdram.sustained_bandwidth(c, chip) / 1e6,
                  "timing": vars(chip.timing(c))} for c in args.clocks]

    print(f"{'case':<38} {'P':>3} {'MHz':>7} {'weight B':>9} {'compute':>9} {'stalls':>8} "
          f"{'total':>9} {'ms':>7} {'buf blk':>7} {'other':>5} {'ring stalls':>11} "
          f"{'ring ms':>7} {'ring blk':>8}")
    for r in rows:
        print(f"{r['case']:<38} {r['lanes']:>3} {r['clock_mhz']:>7.3f} {r['weight_bytes']:>9} "
              f"{r['compute_cycles']:>9.0f} {r['stall_cycles']:>8.0f} {r['total_cycles']:>9.0f} "
              f"{r['latency_ms']:>7.2f} {r['double_buffer_dp16kd']:>7} {r['other_dp16kd']:>5} "
              f"{r['ring_stall_cycles']:>11.0f} {r['ring_latency_ms']:>7.2f} "
              f"{r['ring_dp16kd']:>8}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"chip": chip.name, "bandwidth": bandwidth, "rows": rows},
                              indent=2) + "\n")
    _log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
