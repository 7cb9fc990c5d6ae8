"""``sdtforge convert``: a reference SDT checkpoint → an sdtforge checkpoint.

Checkpoints of the reference code (BICLab/Spike-Driven-Transformer) hold only weights; the
preset supplies what they lack (input size, time steps, pooling, input normalization, dataset),
so the result is a checkpoint ``sdtforge quantize`` and ``sdtforge eval`` take directly.
"""

import json
from pathlib import Path

from . import _args

NAME = "convert"
HELP = "convert a reference SDT checkpoint into an sdtforge checkpoint for a preset"


def add_arguments(parser):
    parser.add_argument("reference", type=Path, help="reference checkpoint (.pth/.pt)")
    parser.add_argument("--preset", required=True,
                        help="preset giving input size, T, pooling, normalization and dataset")
    parser.add_argument("--out", type=Path, required=True, help="sdtforge checkpoint to write")
    parser.add_argument("--trusted", action="store_true",
                        help="unpickle the whole file (reference scripts store argparse objects "
                             "beside the weights); only for files you trust")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="local dataset copy (CIFAR-10 python batches) for the test accuracy")
    parser.add_argument("--no-eval", action="store_true",
                        help="do not measure the test accuracy (no dataset needed)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args):
    import dataclasses

    from sdtforge.model.presets import get_preset

    preset = get_preset(args.preset)
    _args.input_file(args.reference, "reference checkpoint")
    _args.output_file(args.out)
    _args.input_dir(args.data_dir, "--data-dir")
    from sdtforge.model import load_dataset, load_reference_checkpoint
    from sdtforge.model.checkpoint import save_checkpoint
    from sdtforge.model.training import evaluate

    c = preset.config
    # Shape fields the weights cannot tell come from the preset; the rest is read from them.
    overrides = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)
                 if f.name in ("img_size", "T", "pooling_stat", "num_heads", "mean", "std")}
    model = load_reference_checkpoint(args.reference, trusted=args.trusted, **overrides)
    metrics = {"source": args.reference.name}
    if not args.no_eval:
        images, labels = load_dataset(preset.dataset, "test", data_dir=args.data_dir)
        metrics["test_accuracy"] = float(evaluate(model, images, labels))
    save_checkpoint(args.out, model, preset=args.preset, dataset=preset.dataset, seed=0,
                    train_settings={"converted_from": args.reference.name}, metrics=metrics)
    result = {"checkpoint": str(args.out), "preset": args.preset,
              "config": dataclasses.asdict(model.config), **metrics}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        acc = metrics.get("test_accuracy")
        print(f"wrote {args.out} ({preset.dataset}, D={model.config.embed_dims}, "
              f"{model.config.depths} blocks"
              + (f", test accuracy {acc:.4f})" if acc is not None else ")"))
    return 0
