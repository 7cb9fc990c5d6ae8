"""``sdtforge cosim``: the generated Verilog under Icarus or Verilator against the golden model.

Generates the accelerator for the model, loads the model through the load stream, classifies
the first ``--images`` test images of the model's dataset (a ``sdtforge synth`` model: its own
seeded random inputs) with random stalls on every stream,
and compares every logit bit-exactly with the golden model and every cycle count with the cycle
model. The last line is always ``bit-exact: K/N images``; the exit code is 1 when any image
differs or the RTL has not answered within the run's cycle limit (a few times the cycle
model's count: ``sdtforge.sim.cosim.cycle_limit``; the line before says where it stopped).
``--sdram`` keeps the weights in the ULX3S's SDRAM (the generated LiteDRAM controller and
a chip model that checks its timing rules; a broken rule also exits 1), streamed through the
tile prefetch (``--no-prefetch``: one SDRAM read per event).
"""

import json
import sys
import tempfile
from pathlib import Path

from . import _args

NAME = "cosim"
HELP = "co-simulate the generated Verilog (Icarus or Verilator) against the golden model"


def add_arguments(p):
    from sdtforge.hdl.compile import AccelConfig

    p.add_argument("model", type=Path, help="integer model file (.sfm)")
    p.add_argument("--sim", choices=("verilator", "icarus"), default="verilator",
                   help="Verilog simulator")
    p.add_argument("--images", type=_args.positive_int, default=10,
                   help="number of test images (the first N of the test split, in order; a "
                        "synth model: N seeded random inputs)")
    p.add_argument("--lanes", type=_args.power_of_two, default=AccelConfig.lanes,
                   help="PE lanes P (a power of two, at most W)")
    p.add_argument("--width", type=_args.word_width, default=AccelConfig.width,
                   help=f"spike word width W in channels (a power of two, at least "
                        f"{_args.MIN_WIDTH})")
    p.add_argument("--seed", type=_args.seed, default=0,
                   help="seed of the random valid/ready stalls")
    p.add_argument("--writeback-lanes", type=_args.power_of_two, default=None,
                   help="lanes the write-back stage handles per cycle (a power of two dividing "
                        "P; default: all P; 1: a lane-serial write-back, as the iCEBreaker builds)")
    p.add_argument("--events", type=int, choices=(1, 2), default=1,
                   help="events per PE command: 2 adds two weight rows per cycle, read on the "
                        "weight memory's two block RAM ports (as the ULX3S builds, also with "
                        "--sdram: the prefetch window's two ports; and the iCEBreaker from two "
                        "SPRAM copies of 4-bit weights)")
    p.add_argument("--stream-latency", type=int, choices=(1, 3), default=1,
                   help="cycles from a stream memory read's address to its data: 3 puts the "
                        "address and the data in registers, as the ULX3S builds, also with "
                        "--sdram (needs every lane in the write-back: no --writeback-lanes "
                        "below P)")
    p.add_argument("--weight-latency", type=int, choices=(1, 2), default=1,
                   help="cycles from a PE command to its weight row in the adders: 2 takes "
                        "the row into a register first, as the ULX3S builds, also with --sdram")
    p.add_argument("--stall", type=_args.fraction, default=0.3,
                   help="probability of idling valid/ready before each stream beat")
    p.add_argument("--waves", action="store_true", help="dump waveforms into the build dir")
    p.add_argument("--dump-spikes", action="store_true",
                   help="read every spike map from the RTL and name the first layer that "
                        "differs from the golden model")
    p.add_argument("--sdram", action="store_true",
                   help="keep the weights in the ULX3S's SDRAM: the generated LiteDRAM "
                        "controller and an SDRAM chip model that checks its timing (50 MHz); "
                        "the tile prefetch streams the rows, and the cycles exceed the cycle "
                        "model's by the cycles the engine waits for them")
    p.add_argument("--window", type=_args.power_of_two, default=None, metavar="ROWS",
                   help="with --sdram: the prefetch window's rows (a power of two holding the "
                        "largest weight tile; default: two tiles; the window 'sdtforge build "
                        "--sdram --check' reports is the board's)")
    p.add_argument("--no-prefetch", action="store_true",
                   help="with --sdram: read every event's weight row from SDRAM instead (the "
                        "plain path, several times slower)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="directory of the CIFAR-10 batches (for CIFAR models)")
    p.add_argument("--json", action="store_true",
                   help="print the results as JSON (the bit-exact line then goes to stderr)")
    p.add_argument("--out", type=Path, default=None,
                   help="build directory (default: a temporary directory, removed afterwards)")


def run(args):
    import numpy as np

    from sdtforge.errors import UserError
    from sdtforge.model.data import load_integer_inputs
    from sdtforge.quantize import ir
    from sdtforge.sim import latency
    from sdtforge.sim.cosim import cosim

    _args.input_file(args.model, "model")
    _args.input_dir(args.data_dir, "--data-dir")
    _args.output_dir(args.out)
    if args.out is not None:
        _args.output_dir(args.out / args.sim)
    _args.check_lanes_width(args.lanes, args.width)
    _args.check_writeback_lanes(args.writeback_lanes, args.lanes)
    _args.check_stream_latency(args.stream_latency, args.writeback_lanes, args.lanes)
    if args.sdram and args.dump_spikes:
        raise UserError("--dump-spikes does not work with --sdram")
    if args.no_prefetch and not args.sdram:
        raise UserError("--no-prefetch needs --sdram")
    if args.window is not None and (not args.sdram or args.no_prefetch):
        raise UserError("--window needs --sdram and the prefetch")
    if args.no_prefetch and args.events == 2:
        raise UserError("--events 2 needs two weight rows per cycle, which --no-prefetch's "
                        "one SDRAM read per event does not serve; drop --no-prefetch or --events")
    model = ir.load(args.model)
    dataset = model.provenance.get("dataset") or "digits"
    synthetic = model.provenance.get("synthetic")
    if synthetic is not None:
        # A `sdtforge synth` model: its own random inputs, and no labels to score.
        images, labels = latency.sample_images(model, args.images), None
    else:
        images, labels = load_integer_inputs(dataset, "test", model.config, args.data_dir)
        if args.images > len(images):
            raise UserError(f"--images {args.images} exceeds the {len(images)} test images")
        images = np.asarray(images[:args.images], np.uint8)
        labels = np.asarray(labels[:args.images])

    def say(message):
        print(f"cosim: {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="sdtforge-cosim-") as tmp:
        out = args.out if args.out is not None else Path(tmp)
        result = cosim(model, images, sim=args.sim, out=out / args.sim, lanes=args.lanes,
                       width=args.width, seed=args.seed, stall=args.stall, waves=args.waves,
                       dump_spikes=args.dump_spikes, progress=say,
                       writeback_lanes=args.writeback_lanes, sdram=args.sdram,
                       prefetch=not args.no_prefetch, events=args.events,
                       stream_latency=args.stream_latency, weight_latency=args.weight_latency,
                       window=args.window)
    summary = f"bit-exact: {result.bit_exact}/{len(images)} images"
    bad = result.first_mismatch()
    sdram_errors = result.sdram["errors"] if result.sdram else 0
    failed = bool(bad or sdram_errors or result.stuck)
    if args.json:
        data = result.to_json()
        data["dataset"] = dataset
        rtl_classes = np.array([r.cls for r in result.images])
        data["rtl_accuracy"] = (None if labels is None
                                else float(np.mean(rtl_classes == labels)))
        print(json.dumps(data, indent=2))
        print(summary, file=sys.stderr)
        return 1 if failed else 0
    print(f"{'image':>5} {'class':>5} {'golden':>6} {'RTL cycles':>10} {'predicted':>9} "
          f"{'diff':>6}  logits")
    for r in result.images:
        diff = (r.cycles - r.predicted) / r.predicted if r.predicted else 0.0
        print(f"{r.index:>5} {r.cls:>5} {r.expected_cls:>6} {r.cycles:>10} {r.predicted:>9} "
              f"{diff:>+6.1%}  {'ok' if r.ok else 'DIFFER'}")
    print(f"{args.sim}: build {result.build_s:.1f} s, run {result.run_s:.1f} s, "
          f"{result.sim_cycles} cycles ({result.cycles_per_second:,.0f} cycles/s; load stream "
          f"{result.load_cycles} cycles)")
    if result.layer_report:
        for line in result.layer_report:
            print(line)
    if result.sdram:
        c = result.sdram
        print(f"SDRAM: {c['n_wr']} writes, {c['n_rd']} reads, {c['n_act']} activates, "
              f"{c['n_ref']} refreshes; {c['errors']} timing-rule violations (chip model)")
    if bad is not None:
        diffs = ", ".join(f"logit {k}: RTL {a} vs golden {b}" for k, a, b in bad.differing())
        print(f"first mismatch: image {bad.index}: {diffs or 'class differs'}")
    if result.stuck:
        print(f"stopped: {result.stuck}")
    print(summary)
    return 1 if failed else 0
