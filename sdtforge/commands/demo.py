"""``sdtforge demo``: the whole flow on the shipped digits-tiny model, one stage after another.

Each stage calls the same command a user would type, so the demo is also a smoke test of the
CLI; JSON results of the co-simulation and the builds feed the final report. A board that the
fit check refuses is reported as such (with the check's reason) and the flow goes on: the
refusal is a measured result, not an error of the demo.
"""

import contextlib
import json
import time
from pathlib import Path

from ..cli import main as cli_main
from . import _args

NAME = "demo"
HELP = "run the end-to-end flow on the shipped digits-tiny model"


def add_arguments(p):
    from sdtforge.boards.targets import BOARDS

    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory")
    p.add_argument("--images", type=_args.positive_int, default=10,
                   help="images to co-simulate")
    p.add_argument("--sim", default="verilator", choices=["icarus", "verilator"],
                   help="simulator for the co-simulation stage")
    p.add_argument("--board", default="icebreaker", choices=sorted(BOARDS),
                   help="board to build a bitstream for (the ULX3S's 32-lane build takes "
                        "about half an hour)")


def _stages(args, ckpt, sfm):
    out = args.out
    board_dir = out / args.board
    report = [str(sfm), "--out", str(out / "report"), "--cosim", str(out / "cosim.json"),
              "--asic", str(out / "asic" / "asic.json")]
    if (board_dir / "report.json").exists():
        report += ["--build", str(board_dir / "report.json")]
    return [
        # (title, argv, JSON output file or None, exit codes that still let the flow go on)
        ("float checkpoint accuracy", ["eval", str(ckpt)], None, ()),
        ("quantize to 8-bit integer model", ["quantize", str(ckpt), "--out", str(sfm)], None, ()),
        ("golden-model accuracy", ["eval", str(sfm)], None, ()),
        ("generate Verilog", ["generate", str(sfm), "--out", str(out / "rtl")], None, ()),
        (f"co-simulate {args.images} images ({args.sim})",
         ["cosim", str(sfm), "--sim", args.sim, "--images", str(args.images), "--json"],
         out / "cosim.json", ()),
        ("ASIC gate estimate",
         # P = 8 like the generated Verilog, co-simulation and cycle figures of the report.
         ["build", str(sfm), "--target", "asic", "--lanes", "8", "--out", str(out / "asic")],
         None, ()),
        (f"{args.board} bitstream",
         ["build", str(sfm), "--board", args.board, "--out", str(board_dir)], None, (2,)),
        ("report", ["report", *report], None, ()),
    ]


def run(args):
    from sdtforge.model import SHIPPED_CHECKPOINTS

    # Every path the stages write, checked before the first stage runs.
    _args.output_dir(args.out)
    for name in ("rtl", "report", "asic", args.board):
        _args.output_dir(args.out / name)
    for name in ("digits-tiny.sfm", "cosim.json", "demo.json", f"{args.board}/report.json"):
        _args.output_file(args.out / name)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt = SHIPPED_CHECKPOINTS["digits-tiny"]
    sfm = args.out / "digits-tiny.sfm"
    # The report stage's inputs depend on what the board stage produced: list the stages again
    # once it has run.
    (args.out / args.board / "report.json").unlink(missing_ok=True)
    summary = []
    start_all = time.monotonic()
    for index in range(len(_stages(args, ckpt, sfm))):
        title, argv, json_out, tolerated = _stages(args, ckpt, sfm)[index]
        print(f"\n== {title}: sdtforge {' '.join(argv)}", flush=True)
        start = time.monotonic()
        if json_out is None:
            rc = cli_main(argv)
        else:
            with open(json_out, "w") as f, contextlib.redirect_stdout(f):
                rc = cli_main(argv)
        seconds = round(time.monotonic() - start, 1)
        status = "ok" if rc == 0 else ("refused (see above)" if rc in tolerated else f"exit {rc}")
        summary.append({"stage": title, "status": status, "seconds": seconds})
        if rc != 0 and rc not in tolerated:
            print(f"demo: stage '{title}' failed (exit {rc})")
            _write(args.out, summary)
            return rc
    _write(args.out, summary)
    width = max(len(s["stage"]) for s in summary)
    print(f"\n{'stage':<{width}}  status")
    for s in summary:
        print(f"{s['stage']:<{width}}  {s['status']}  ({s['seconds']} s)")
    report = args.out / "report" / "report.md"
    print(f"total {time.monotonic() - start_all:.0f} s; report: {report}")
    return 0


def _write(out, summary):
    (out / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
