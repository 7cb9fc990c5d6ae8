"""``sdtforge synth --preset P --firing-rate R --out MODEL.sfm``: a random integer model.

A sizing aid: an integer model of a preset's shape with random weights, its thresholds scaled
so that its firing rate on random inputs is near ``R`` (:func:`sdtforge.quantize.synthetic.
synth_model`). ``generate``, ``cosim``, ``build`` and ``report`` take it like a quantized model,
with the same random inputs for cycles and latency, so a model's memories, cycles and latency
can be sized before its dataset or training is at hand. Its accuracy means nothing.
"""

import json
import sys
from pathlib import Path

from . import _args

NAME = "synth"
HELP = "make a random integer model of a preset at a firing rate (sizing only, no accuracy)"


def add_arguments(p):
    from sdtforge.model.presets import INTEGER_PRESETS

    p.add_argument("--preset", choices=INTEGER_PRESETS, required=True, help="model shape")
    p.add_argument("--firing-rate", type=_args.fraction, required=True,
                   help="target spikes per neuron update, between 0 and 1 (the shipped "
                        "digits-tiny: 0.13 on its test images)")
    p.add_argument("--seed", type=_args.seed, default=0,
                   help="seed of the weights, thresholds and random inputs")
    p.add_argument("--images", type=_args.positive_int, default=1,
                   help="random inputs the firing rate is measured on")
    p.add_argument("--out", type=Path, required=True, help="integer model file to write (.sfm)")
    p.add_argument("--json", action="store_true", help="print the model's summary as JSON")


def run(args):
    from sdtforge.errors import UserError
    from sdtforge.quantize import ir
    from sdtforge.quantize.synthetic import RATE_TOLERANCE, synth_model

    if args.firing_rate == 0:
        raise UserError("--firing-rate must be above 0 (a model that never fires does no work)")
    _args.output_file(args.out)

    def say(line):
        print(f"synth: {line}", file=sys.stderr, flush=True)

    model = synth_model(args.preset, args.firing_rate, seed=args.seed, images=args.images,
                        progress=None if args.json else say)
    path = ir.save(model, args.out)
    reached = model.provenance["synthetic"]["firing_rate"]
    note = None
    if abs(reached - args.firing_rate) > RATE_TOLERANCE * args.firing_rate:
        note = (f"the rate jumps past {args.firing_rate:g} between neighbouring threshold "
                f"scales (a neuron that flips changes the layers after it); {reached:.4f} is "
                f"the nearest; another --seed may come closer")
    summary = {"out": str(path), "note": note, **model.provenance["synthetic"],
               "dataset": model.provenance["dataset"],
               "weights": int(sum(layer.weight.size for layer in model.layers
                                     if getattr(layer, "weight", None) is not None))}
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
        return 0
    print(f"{args.preset}: firing rate {summary['firing_rate']:.4f} (target "
          f"{args.firing_rate:g}) with thresholds up to {summary['theta_max']}, "
          f"{summary['weights']:,} random weights (sizing only; no accuracy)")
    if note:
        print(f"note: {note}")
    print(f"wrote {path}")
    return 0
