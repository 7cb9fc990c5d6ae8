"""``sdtforge generate``: integer model → accelerator Verilog, memory images, program, config.

Everything written is deterministic: a second run on the same model writes the same bytes
(no absolute paths, no timestamps, ``emit_src=False``).
"""

import json
from pathlib import Path

NAME = "generate"
HELP = "generate the accelerator's Verilog, memory images and program for an integer model"


def add_arguments(p):
    p.add_argument("model", type=Path, help="integer model file (.sfm)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--lanes", type=int, default=8, help="PE lanes P (a power of two)")
    p.add_argument("--width", type=int, default=16,
                   help="spike word width W in channels (a power of two, at least 8, >= P)")
    p.add_argument("--config", type=Path, default=None,
                   help="hardware config JSON to target (default: the smallest that fits)")
    p.add_argument("--json", action="store_true", help="print the memory table as JSON")


def run(args):
    from amaranth.back import verilog

    from sdtforge.errors import UserError
    from sdtforge.hdl.accelerator import Accelerator
    from sdtforge.hdl.compile import (
        AccelConfig,
        compile_model,
        format_memory_table,
        load_stream_bytes,
        memory_table,
    )

    config = None
    if args.config is not None:
        try:
            config = AccelConfig.from_json(args.config.read_text())
        except (OSError, TypeError, ValueError) as exc:
            raise UserError(f"cannot read hardware config {args.config}: {exc}") from None
    try:
        compiled = compile_model(args.model, config, lanes=args.lanes, width=args.width)
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad accelerator parameters: {exc}") from None
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    top = Accelerator(compiled.config)
    text = verilog.convert(top, name="sdtforge_accel", emit_src=False,
                           ports=None)
    (out / "sdtforge_accel.v").write_text(text)
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
        print(f"wrote {out}/sdtforge_accel.v, config.json, program.txt, load.bin, *.hex")
    return 0
