"""``sdtforge build``: a board bitstream (or an ASIC gate estimate) for an integer model.

The fit check runs first and refuses, in one sentence, a model or lane count that cannot fit
the board; then Yosys + nextpnr (YoWASP) build through the amaranth-boards platform with a
seeded placer (saying each stage on stderr as the tools' logs show it, and every two minutes
while one lasts), and the figures are read back from the tools' reports. The latency per image is
the cycle model's mean over the first test images at the built lanes and width, at the built
clock (``sdtforge.sim.latency``).
"""

import json
import sys
from pathlib import Path

from . import _args

NAME = "build"
HELP = "build a board bitstream (or an ASIC gate estimate) for an integer model"


# The range of --freq in MHz.
FREQ_MHZ = (1, 400)


def add_arguments(p):
    from sdtforge.boards.targets import BOARDS

    p.add_argument("model", type=Path, help="integer model file (.sfm)")
    p.add_argument("--board", choices=sorted(BOARDS), default="icebreaker",
                   help="target board (also sets the fit check for --target asic)")
    p.add_argument("--target", choices=("fpga", "asic"), default="fpga",
                   help="fpga: bitstream for --board; asic: generic-gate estimate of the core")
    p.add_argument("--lanes", type=_args.power_of_two, default=None,
                   help=f"PE lanes P, a power of two (default: the board's: "
                        f"{_args.per_board(lambda b: b.default_lanes)})")
    p.add_argument("--width", type=_args.word_width, default=None,
                   help=f"spike word width W, a power of two of at least {_args.MIN_WIDTH} "
                        f"(default: the board's: {_args.per_board(lambda b: b.default_width)})")
    p.add_argument("--freq", type=_args.positive_float, default=None,
                   help=f"system clock request in MHz, {FREQ_MHZ[0]} to {FREQ_MHZ[1]} (default: "
                        f"the board's: {_args.per_board(lambda b: f'{b.f_sync / 1e6:g}')})")
    p.add_argument("--baud", type=_args.positive_int, default=115200, help="UART baud rate")
    p.add_argument("--seed", type=_args.seed, default=1, help="nextpnr placer seed")
    p.add_argument("--out", type=Path, default=Path("build"), help="output directory")
    p.add_argument("--data-dir", type=Path,
                   help="dataset directory for the latency's test images (CIFAR-10 models)")
    p.add_argument("--sdram", action="store_true",
                   help="keep the weights in the board's SDRAM (ulx3s-85f), streamed by the tile "
                        "prefetch; only its window takes block RAM")
    p.add_argument("--check", action="store_true",
                   help="the fit check and the latency only: no synthesis, nothing written")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


_TABLE_KEYS = ("lanes", "lc", "lut4", "slice_comb", "ff", "bram", "spram", "dsp", "clock_mhz",
               "fmax_mhz", "timing_met")


def _table(figures):
    out = []
    for k in (k for k in _TABLE_KEYS if k in figures):
        avail = figures.get(f"{k}_available")
        value = figures[k]
        out.append(f"{k:<17}{value!s:>10}" + (f" / {avail}" if avail else ""))
    return "\n".join(out) + "\n"


def _latency(model, config, clock_mhz, data_dir):
    """Cycle-model cycles per image at the built ``config`` and their time at ``clock_mhz``
    (with the weights in SDRAM: the prefetch's stalls too, and the weight bytes per image).

    Without ``data_dir``, a model whose test images cannot be read (CIFAR-10) gets ``None``
    figures and a ``latency_note`` saying why; the build itself goes on.
    """
    from sdtforge.errors import UserError
    from sdtforge.sim import latency

    figures = {"latency_images": latency.DEFAULT_IMAGES}
    try:
        if config.weight_tile_rows:
            sdram = latency.sdram_cycles_per_image(model, config, clock_mhz,
                                                   images=latency.DEFAULT_IMAGES,
                                                   data_dir=data_dir)
            cycles = sdram["cycles"]
            figures.update(stall_cycles=round(sdram["stall_cycles"], 1),
                           weight_bytes_per_image=round(sdram["weight_bytes"]))
        else:
            cycles = latency.cycles_per_image(model, config.lanes, config.width,
                                              images=latency.DEFAULT_IMAGES, data_dir=data_dir,
                                              config=config)
    except UserError as exc:
        if data_dir is not None:
            raise
        figures.update(cycles_per_image=None, latency_ms=None, images_per_s=None,
                       latency_note=f"no latency: {exc}")
        return figures
    figures["cycles_per_image"] = round(cycles, 1)
    figures.update(latency.latency(cycles, clock_mhz))
    return figures


def _asic(args, config):
    from sdtforge.boards.asic import NAND2_WEIGHTS, asic_estimate
    from sdtforge.hdl.accelerator import Accelerator

    result = asic_estimate(Accelerator(config, external_weights=False))
    result.update({"target": "asic", "lanes": config.lanes, "width": config.width,
                   "nand2_weights": NAND2_WEIGHTS})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "asic.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return 0
    print(f"generic gates (abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX), lanes {config.lanes}:")
    for cell, n in sorted(result["cells"].items()):
        print(f"  {cell:<16}{n:>8}")
    print(f"  {'NAND2 eq.':<16}{result['nand2']:>8}   (flip-flops {result['flops']})")
    print("SRAM macros:")
    for mac in result["macros"]:
        print(f"  {mac['name']:<12}{mac['rows']:>7} x {mac['bits']:<4} = {mac['total_bits']:>8}"
              f" bits")
    print(f"  {'total':<12}{result['sram_bits']:>24} bits")
    print(f"wrote {args.out}/asic.json")
    return 0


def _print_plan(plan):
    """The fit check's memory-to-block table and logic estimate."""
    board = plan.board
    print(plan.table(), end="")
    print(f"logic estimate: about {plan.luts_estimate} "
          f"{'logic cells' if board.family == 'ice40' else 'LUT4s'} of {board.luts}")
    if plan.events_note:
        print(plan.events_note)


def _print_latency(figures):
    """The latency line of a build's or a fit check's figures (or why there is none)."""
    if figures.get("latency_note"):
        print(figures["latency_note"])
    elif figures.get("latency_ms") is not None:
        print(f"latency: {figures['latency_ms']} ms per image, {figures['images_per_s']} "
              f"images/s ({figures['cycles_per_image']} cycles at {figures['clock_mhz']} MHz, "
              f"{figures['lanes']} lane{'s' if figures['lanes'] != 1 else ''}"
              f"{', two events per command' if figures.get('events') == 2 else ''}; cycle model, "
              f"mean of the first "
              f"{figures['latency_images']} test images)")
        if figures.get("stall_cycles") is not None:
            print(f"weights from SDRAM: {figures['weight_bytes_per_image']} bytes per image, "
                  f"{figures['stall_cycles']} cycles waiting for them")


def _check(args, plan, f_sync, timing):
    """``--check``: the plan's figures (it fits: a refusal was raised before) and the latency."""
    board = plan.board
    figures = {
        "board": board.name, "fits": True, "sdram": plan.sdram_tiles is not None,
        "lanes": plan.config.lanes, "events": plan.config.events,
        "width": plan.config.width, "clock_mhz": round(f_sync / 1e6, 3),
        "bram": plan.brams, "bram_available": board.brams,
        "spram": plan.sprams, "spram_available": board.sprams,
        "logic_estimate": plan.luts_estimate, "logic_available": board.luts,
        "logic_unit": "lc" if board.family == "ice40" else "lut4",
        "memories": {name: {"rows": rows, "bits": bits, "blocks": blocks}
                     for name, (rows, bits, blocks) in plan.usage.items()},
        **timing,
    }
    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
        return 0
    _print_plan(plan)
    _print_latency(figures)
    print(f"fits the {board.name} (fit check only: no synthesis, nothing written)")
    return 0


def run(args):
    from sdtforge.boards.build import build_bitstream
    from sdtforge.boards.image import model_image
    from sdtforge.boards.targets import get_board, plan_board
    from sdtforge.errors import UserError
    from sdtforge.quantize import ir

    board = get_board(args.board)
    if not args.model.exists():
        raise UserError(f"no model file {args.model}; make one with `sdtforge quantize`")
    _args.input_file(args.model, "model")
    _args.input_dir(args.data_dir, "--data-dir")
    if args.check and args.target == "asic":
        raise UserError("--check is the board fit check; it does not apply to --target asic")
    if args.sdram and args.target == "asic":
        raise UserError("--sdram is a board build option; it does not apply to --target asic")
    if not args.check:
        _args.output_dir(args.out)
        for name in (("asic.json",) if args.target == "asic"
                     else ("report.json", "config.json")):
            _args.output_file(args.out / name)
    lanes = board.default_lanes if args.lanes is None else args.lanes
    width = board.default_width if args.width is None else args.width
    _args.check_lanes_width(lanes, width)
    if args.freq is not None and not FREQ_MHZ[0] <= args.freq <= FREQ_MHZ[1]:
        raise UserError(f"--freq {args.freq:g} MHz is out of range; use {FREQ_MHZ[0]} to "
                        f"{FREQ_MHZ[1]}")
    model = ir.load(args.model)
    if args.target == "asic":
        # The core is the same generator; the board plan only fixes lanes and depths.
        from sdtforge.hdl.compile import compile_model
        compiled = compile_model(model, lanes=lanes, width=width)
        return _asic(args, compiled.config)

    plan = plan_board(model, board, lanes=lanes, width=width, sdram=args.sdram)
    if not args.json and not args.check:
        _print_plan(plan)
    img = model_image(plan.compiled)
    f_sync = None if args.freq is None else args.freq * 1e6
    try:
        top = board.top(plan.config, image_bytes=img.image_bytes, num_classes=img.num_classes,
                        f_sync=f_sync, baud=args.baud)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    # The cycle model takes seconds; before place and route, so a bad --data-dir stops early.
    timing = _latency(model, plan.config, top.f_sync / 1e6, args.data_dir)
    if args.check:
        return _check(args, plan, top.f_sync, timing)

    def say(line):
        print(f"build: {line}", file=sys.stderr, flush=True)

    figures = build_bitstream(board, top, args.out, seed=args.seed, f_sync=top.f_sync,
                              progress=say)
    figures.update({"lanes": plan.config.lanes, "width": plan.config.width,
                    "events": plan.config.events, "model_id": img.model_id.hex(),
                    "baud": args.baud,
                    "sdram": plan.sdram_tiles is not None, **timing})
    (args.out / "report.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    (args.out / "config.json").write_text(plan.config.to_json())
    if args.json:
        print(json.dumps(figures, indent=2, sort_keys=True))
    else:
        print(_table(figures), end="")
        _print_latency(figures)
        if not figures["timing_met"]:
            print(f"warning: Fmax {figures['fmax_mhz']} MHz is below the "
                  f"{figures['clock_mhz']} MHz clock; rebuild with --freq "
                  f"{int(figures['fmax_mhz'] or 1)}")
        print(f"wrote {args.out}/ (bitstream, report.json, config.json)")
    return 0
