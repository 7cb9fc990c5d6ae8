"""``spikeforge demo``: the whole flow on the shipped digits-tiny model, one stage after another.

Each stage calls the same command a user would type, so the demo is also a smoke test of the
CLI. Stages whose command is not part of this installation are listed as skipped, never faked.
"""

import json
import time
from pathlib import Path

from ..cli import _load
from ..cli import main as cli_main

NAME = "demo"
HELP = "run the end-to-end flow on the shipped digits-tiny model"


def add_arguments(p):
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory")
    p.add_argument("--images", type=int, default=10, help="images to co-simulate")
    p.add_argument("--sim", default="icarus", choices=["icarus", "verilator"],
                   help="simulator for the co-simulation stage")


def _stages(args, ckpt, sfm):
    gen = args.out / "rtl"
    return [
        ("eval float checkpoint", "eval", [str(ckpt)]),
        ("quantize to 8-bit integer model", "quantize", [str(ckpt), "--out", str(sfm)]),
        ("golden-model accuracy", "eval", [str(sfm)]),
        ("generate Verilog", "generate", [str(sfm), "--out", str(gen)]),
        ("co-simulate", "cosim", [str(sfm), "--sim", args.sim, "--images", str(args.images)]),
        ("iCEBreaker bitstream", "build",
         [str(sfm), "--board", "icebreaker", "--out", str(args.out / "icebreaker")]),
        ("report", "report", ["--out", str(args.out / "report")]),
    ]


def run(args):
    from spikeforge.model import SHIPPED_CHECKPOINTS

    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = SHIPPED_CHECKPOINTS["digits-tiny"]
    sfm = args.out / "digits-tiny.sfm"
    summary = []
    for title, command, argv in _stages(args, ckpt, sfm):
        if _load(command) is None:
            print(f"== {title}: skipped (`spikeforge {command}` is not built yet)")
            summary.append({"stage": title, "status": "not built yet"})
            continue
        print(f"== {title}: spikeforge {command} {' '.join(argv)}", flush=True)
        start = time.monotonic()
        rc = cli_main([command, *argv])
        seconds = round(time.monotonic() - start, 1)
        summary.append({"stage": title, "status": "ok" if rc == 0 else f"exit {rc}",
                        "seconds": seconds})
        if rc != 0:
            print(f"demo: stage '{title}' failed (exit {rc})")
            _write(args.out, summary)
            return rc
    _write(args.out, summary)
    width = max(len(s["stage"]) for s in summary)
    print("\nstage".ljust(width + 3) + "status")
    for s in summary:
        extra = f"  ({s['seconds']} s)" if "seconds" in s else ""
        print(f"{s['stage']:<{width}}  {s['status']}{extra}")
    return 0


def _write(out, summary):
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
