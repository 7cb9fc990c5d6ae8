"""``sdtforge quantize CKPT --out MODEL.sfm``: fold, quantize, write the integer model file."""

from __future__ import annotations

import json
from pathlib import Path

from . import _args

NAME = "quantize"
HELP = ("fold BN and quantize a float checkpoint into an integer model file (.sfm); report "
        "float vs integer accuracy and per-layer spike agreement")


def add_arguments(parser):
    parser.add_argument("checkpoint", type=Path,
                        help="sdtforge checkpoint (.pt) from `sdtforge train`")
    parser.add_argument("--out", type=Path, required=True,
                        help="integer model file to write (.sfm); its directory must exist")
    parser.add_argument("--weight-bits", type=int, default=8,
                        help="signed weight bits (4-8; 2-3 for experiments)")
    parser.add_argument("--qat-epochs", type=_args.nonneg_int, default=0,
                        help="quantization-aware fine-tuning epochs before quantizing")
    parser.add_argument("--qat-lr", type=_args.positive_float, default=3e-4,
                        help="QAT peak learning rate (cosine-annealed to 0)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="local dataset copy (CIFAR python batches)")
    parser.add_argument("--limit", type=_args.positive_int, default=None,
                        help="evaluate on the first N test images only (default: all)")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")


def run(args):
    from sdtforge.quantize import ir
    from sdtforge.quantize.quantizer import QuantRules, load_float, quantize_checkpoint
    from sdtforge.quantize.report import compare

    # Every check before the minutes of quantization (and QAT) start.
    _args.input_file(args.checkpoint, "checkpoint")
    _args.output_file(args.out, make_parents=False)
    _args.input_dir(args.data_dir, "--data-dir")
    QuantRules(args.weight_bits)  # the quantizer's own range check (UserError)
    original, ckpt, _ = load_float(args.checkpoint)
    qmodel, model = quantize_checkpoint(args.checkpoint, weight_bits=args.weight_bits,
                                        qat_epochs=args.qat_epochs, qat_lr=args.qat_lr,
                                        data_dir=args.data_dir, progress=not args.json,
                                        return_float=True)
    # spikes are compared with the float model the integers come from (QAT-tuned after QAT);
    # the accuracy to beat stays the original checkpoint's
    report = compare(model, qmodel, ckpt, data_dir=args.data_dir, limit=args.limit,
                     progress=not args.json)
    if args.qat_epochs:
        report["tuned_float_accuracy"] = report["float_accuracy"]
        report["float_accuracy"] = compare(original, qmodel, ckpt, data_dir=args.data_dir,
                                           limit=args.limit, isolated=False)["float_accuracy"]
    qmodel.provenance["integer_accuracy"] = report["integer_accuracy"]
    if report.get("float_accuracy") is not None:
        qmodel.provenance["float_accuracy"] = report["float_accuracy"]
    path = ir.save(qmodel, args.out)
    report["out"] = str(path)
    report["weight_bits"] = args.weight_bits
    report["qat_epochs"] = args.qat_epochs
    report["stream_bits"] = qmodel.stream_bits
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    print(f"wrote {path} ({args.weight_bits}-bit weights, stream {qmodel.stream_bits} bits)")
    print(f"  test images      {report['images']}")
    print(f"  float accuracy   {100 * report['float_accuracy']:.2f} %")
    if "tuned_float_accuracy" in report:
        print(f"  QAT-tuned float  {100 * report['tuned_float_accuracy']:.2f} %")
    print(f"  integer accuracy {100 * report['integer_accuracy']:.2f} %")
    print("  spike agreement, float vs integer (end to end; isolated = each integer layer fed")
    print("  the float network's inputs):")
    iso = report.get("isolated_agreement", {})
    for name, frac in report["spike_agreement"].items():
        print(f"    {name:22s} {frac:.4f}   isolated {iso.get(name, float('nan')):.4f}")
    return 0
