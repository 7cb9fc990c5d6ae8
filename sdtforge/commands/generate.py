"""``sdtforge generate``: integer model → accelerator Verilog, memory images, program, config.

Everything written is deterministic: a second run on the same model writes the same bytes
(no absolute paths, no timestamps, ``emit_src=False``).
"""

import json
from pathlib import Path

from . import _args

NAME = "generate"
HELP = "generate the accelerator's Verilog, memory images and program for an integer model"


def add_arguments(p):
    from sdtforge.hdl.compile import AccelConfig

    p.add_argument("model", type=Path, help="integer model file (.sfm)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--lanes", type=_args.power_of_two, default=AccelConfig.lanes,
                   help="PE lanes P (a power of two, at most W)")
    p.add_argument("--width", type=_args.word_width, default=AccelConfig.width,
                   help=f"spike word width W in channels (a power of two, at least "
                        f"{_args.MIN_WIDTH}, >= P)")
    p.add_argument("--writeback-lanes", type=_args.power_of_two, default=None,
                   help="lanes the write-back stage handles per cycle (a power of two dividing "
                        "P; default: all P; 1: a lane-serial write-back, as the iCEBreaker builds)")
    p.add_argument("--events", type=int, choices=(1, 2), default=1,
                   help="events per PE command: 2 adds two weight rows per cycle, read on the "
                        "weight memory's two block RAM ports (as the ULX3S builds, and the "
                        "iCEBreaker from two SPRAM copies of 4-bit weights)")
    p.add_argument("--stream-latency", type=int, choices=(1, 3), default=1,
                   help="cycles from a stream memory read's address to its data: 3 puts the "
                        "address and the data in registers, as the ULX3S builds (needs "
                        "every lane in the write-back: no --writeback-lanes below P)")
    p.add_argument("--weight-latency", type=int, choices=(1, 2), default=1,
                   help="cycles from a PE command to its weight row in the adders: 2 takes "
                        "the row into a register first, as the ULX3S builds")
    p.add_argument("--config", type=Path, default=None,
                   help="hardware config JSON to target (default: the smallest that fits)")
    p.add_argument("--json", action="store_true", help="print the memory table as JSON")


def run(args):
    from sdtforge.errors import UserError
    from sdtforge.hdl.compile import (
        AccelConfig,
        compile_model,
        format_memory_table,
        load_stream_bytes,
        memory_table,
    )
    from sdtforge.hdl.verilog import TOP, accelerator_verilog

    _args.input_file(args.model, "model")
    _args.input_file(args.config, "--config")
    _args.output_dir(args.out)
    _args.check_lanes_width(args.lanes, args.width)
    _args.check_writeback_lanes(args.writeback_lanes, args.lanes)
    _args.check_stream_latency(args.stream_latency, args.writeback_lanes, args.lanes)
    config = None
    if args.config is not None:
        try:
            config = AccelConfig.from_json(args.config.read_text())
        except (OSError, TypeError, ValueError) as exc:
            raise UserError(f"cannot read hardware config {args.config}: {exc}") from None
    compiled = compile_model(args.model, config, lanes=args.lanes, width=args.width,
                             writeback_lanes=args.writeback_lanes, events=args.events,
                             stream_latency=args.stream_latency,
                             weight_latency=args.weight_latency)
    text = accelerator_verilog(compiled.config)
    out = args.out
    # Nothing is written until every file can be.
    for name in (f"{TOP}.v", "config.json", "program.txt", "load.bin", "memories.json",
                 *(f"{memory}.hex" for memory in compiled.images)):
        _args.output_file(out / name)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{TOP}.v").write_text(text)
    (out / "config.json").write_text(compiled.config.to_json())
    (out / "program.txt").write_text(compiled.listing())
    (out / "load.bin").write_bytes(load_stream_bytes(compiled))
    cfg = compiled.config
    for name, rows in compiled.images.items():
        digits = (cfg.row_bits(name) + 3) // 4
        (out / f"{name}.hex").write_text("".join(f"{r:0{digits}x}\n" for r in rows))
    table = memory_table(compiled)
    (out / "memories.json").write_text(json.dumps(
        [dict(zip(("memory", "rows", "row_bits", "bits", "available"), r, strict=True))
         for r in table], indent=2) + "\n")
    if args.json:
        print((out / "memories.json").read_text(), end="")
    else:
        print(format_memory_table(compiled), end="")
        print(f"wrote {out}/{TOP}.v, config.json, program.txt, load.bin, *.hex")
    return 0
