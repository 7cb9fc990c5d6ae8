"""``sdtforge convert``: a reference SDT checkpoint → an sdtforge checkpoint.

Checkpoints of the reference code (BICLab/Spike-Driven-Transformer) hold only weights. Their
shapes give the input channels, ``D``, the blocks, the MLP ratio and the class count; the rest
(input size, time steps, pooling, input normalization, dataset, event input, DVS mode) comes from
``--preset`` and the options, each option replacing the preset's value. Where the weights and
the preset or an option disagree, or the dataset does not fit the model, the command refuses
with one line that names the checkpoint's shape, and writes nothing.
"""

import argparse
import json
from pathlib import Path

from . import _args

NAME = "convert"
HELP = "convert a reference SDT checkpoint into an sdtforge checkpoint"

#: Fields the weights' shapes give (:func:`sdtforge.model.checkpoint.reference_shape`).
_FROM_WEIGHTS = ("in_channels", "embed_dims", "depths", "mlp_ratio", "num_classes")


def _size(text):
    """``H`` or ``HxW``."""
    parts = text.lower().split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (H or HxW)") from None
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (H or HxW)")
    return values * 2 if len(values) == 1 else values


def _floats(text):
    """Comma-separated numbers, one per input channel."""
    try:
        return tuple(_args._float(v) for v in text.split(","))
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc} (give one number per input "
                                         f"channel, comma-separated)") from None


def _pooling(text):
    if len(text) != 4 or set(text) - {"0", "1"}:
        raise argparse.ArgumentTypeError(f"{text!r} is not four 0/1 characters (e.g. 0011)")
    return text


def add_arguments(parser):
    from sdtforge.model.data import DATASET_INFO

    parser.add_argument("reference", type=Path, help="reference checkpoint (.pth/.pt)")
    parser.add_argument("--preset", default=None,
                        help="preset giving the defaults of the options below (sdtforge presets)")
    parser.add_argument("--out", type=Path, required=True, help="sdtforge checkpoint to write")
    shape = parser.add_argument_group(
        "model", "replace the preset's value; --in-channels and --num-classes must equal the "
                 "checkpoint's own")
    shape.add_argument("--img-size", type=_size, metavar="H[xW]", help="input size in pixels")
    shape.add_argument("--in-channels", type=_args.positive_int, metavar="C")
    shape.add_argument("--num-classes", type=_args.positive_int, metavar="K")
    shape.add_argument("--time-steps", type=_args.positive_int, metavar="T")
    shape.add_argument("--pooling", type=_pooling, metavar="BITS",
                       help="the reference's pooling_stat, e.g. 0011")
    shape.add_argument("--num-heads", type=_args.positive_int, metavar="H",
                       help="attention heads (they matter only with --dvs)")
    shape.add_argument("--mean", type=_floats, metavar="M[,M...]",
                       help="input mean per channel, u8/255 domain (default: the dataset's)")
    shape.add_argument("--std", type=_floats, metavar="S[,S...]",
                       help="input std per channel (default: the dataset's)")
    shape.add_argument("--events", action=argparse.BooleanOptionalAction, default=None,
                       help="the model takes event frames [T, C, H, W] (DVS datasets)")
    shape.add_argument("--dvs", action=argparse.BooleanOptionalAction, default=None,
                       help="the reference's dvs_mode: max-pools inside the attention "
                            "(default: the preset's; without one, on for --dataset cifar10-dvs)")
    parser.add_argument("--dataset", choices=list(DATASET_INFO), default=None,
                        help="the data the model classifies (default: the preset's)")
    parser.add_argument("--trusted", action="store_true",
                        help="unpickle the whole file (reference scripts store argparse objects "
                             "beside the weights); only for files you trust")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="local dataset copy (CIFAR python batches, DVS event files) for "
                             "the test accuracy")
    parser.add_argument("--no-eval", action="store_true",
                        help="do not measure the test accuracy (no dataset needed)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _describe(shape):
    return (f"D={shape['embed_dims']}, {shape['depths']} block(s), MLP ×{shape['mlp_ratio']}, "
            f"{shape['in_channels']}-channel input, {shape['num_classes']} classes")


def _matching_presets(shape):
    from sdtforge.model.presets import PRESETS

    return [n for n, p in PRESETS.items()
            if all(getattr(p.config, k) == shape[k] for k in _FROM_WEIGHTS)]


def resolve_config(shape, args):
    """The :class:`SDTConfig` fields and dataset for the checkpoint of ``shape``: the preset's,
    replaced by the options, checked against the weights and the dataset. Raises
    :class:`~sdtforge.errors.UserError` (one line) on any mismatch or missing value."""
    import dataclasses

    from sdtforge.errors import UserError
    from sdtforge.model.data import DATASET_INFO
    from sdtforge.model.presets import get_preset

    preset = get_preset(args.preset) if args.preset else None
    base = dataclasses.asdict(preset.config) if preset else {}
    fields = {"img_size": args.img_size, "in_channels": args.in_channels,
              "num_classes": args.num_classes, "T": args.time_steps,
              "pooling_stat": args.pooling, "num_heads": args.num_heads}
    if args.events is not None:
        fields["encoding"] = "events" if args.events else "direct"
    if args.dvs is not None:
        fields["dvs"] = args.dvs
    elif preset is None and args.dataset == "cifar10-dvs":
        fields["dvs"] = True  # the reference trains CIFAR10-DVS in dvs_mode, and only it
    given = {k: v for k, v in fields.items() if v is not None}
    desc = _describe(shape)
    for key, flag in (("in_channels", "--in-channels"), ("num_classes", "--num-classes")):
        if key in given and given[key] != shape[key]:
            raise UserError(f"{flag} {given[key]} does not match the checkpoint ({desc})")
    if preset:
        wrong = [k for k in _FROM_WEIGHTS
                 if k not in given and getattr(preset.config, k) != shape[k]]
        if wrong:
            fits = _matching_presets(shape)
            hint = (f"use --preset {fits[0]}" if fits else
                    "give --num-classes and --dataset" if wrong == ["num_classes"] else
                    "no preset has this shape: give --img-size, --time-steps, --pooling and "
                    "--dataset without --preset")
            raise UserError(f"the checkpoint is {desc}; preset {args.preset} has "
                            + ", ".join(f"{k}={getattr(preset.config, k)}" for k in wrong)
                            + f": {hint}")
    config = {**base, **shape, **given}
    missing = [flag for key, flag in (("img_size", "--img-size"), ("T", "--time-steps"),
                                      ("pooling_stat", "--pooling")) if key not in config]
    dataset = args.dataset or (preset.dataset if preset else None)
    if dataset is None:
        missing.append("--dataset")
    if missing:
        raise UserError(f"the checkpoint ({desc}) does not say its {', '.join(missing)}: give "
                        f"them, or a --preset that does")
    info = DATASET_INFO[dataset]
    events = config.get("encoding", "direct") == "events"
    for key, value, what in (("in_channels", info.channels, "input channels"),
                             ("num_classes", info.classes, "classes")):
        if config[key] != value:
            raise UserError(f"dataset {dataset} has {value} {what}, the checkpoint "
                            f"{config[key]} ({desc}): give the --dataset it was trained on")
    if not args.no_eval and not info.readable:
        raise UserError(f"sdtforge has no reader for the {dataset} dataset: pass --no-eval "
                        f"(and evaluate the model in Python, docs/model.md)")
    if info.readable and tuple(config["img_size"]) != info.size:
        raise UserError(f"dataset {dataset} has {info.size[0]}×{info.size[1]} inputs, the model "
                        f"takes {config['img_size'][0]}×{config['img_size'][1]}: fix --img-size "
                        f"or --dataset")
    if (info.mean is None) != events:
        raise UserError(f"dataset {dataset} is {'an event' if info.mean is None else 'an image'}"
                        f" dataset; the model {'takes' if events else 'does not take'} event "
                        f"frames: give --events or --no-events to match it")
    if events:
        mean = args.mean or (0.0,) * config["in_channels"]
        std = args.std or (1.0,) * config["in_channels"]
    elif args.mean or args.std:
        if not (args.mean and args.std):
            raise UserError("give --mean and --std together")
        mean, std = args.mean, args.std
    elif preset and dataset == preset.dataset:
        mean, std = preset.config.mean, preset.config.std
    else:
        mean, std = info.mean, info.std
    config.update(mean=mean, std=std)
    return config, dataset


def run(args):
    import dataclasses

    _args.input_file(args.reference, "reference checkpoint")
    _args.output_file(args.out)
    _args.input_dir(args.data_dir, "--data-dir")
    from sdtforge.model import load_dataset, load_reference_checkpoint
    from sdtforge.model.checkpoint import (
        read_reference_state_dict,
        reference_shape,
        save_checkpoint,
    )
    from sdtforge.model.training import evaluate

    sd = read_reference_state_dict(args.reference, trusted=args.trusted)
    fields, dataset = resolve_config(reference_shape(sd), args)
    # The weights' own fields are read from them again; the loader builds and checks the config.
    model = load_reference_checkpoint(sd, **{k: v for k, v in fields.items()
                                             if k not in _FROM_WEIGHTS})
    metrics = {"source": args.reference.name}
    if not args.no_eval:
        images, labels = load_dataset(dataset, "test", data_dir=args.data_dir,
                                      time_steps=model.config.T)
        metrics["test_accuracy"] = float(evaluate(model, images, labels))
    save_checkpoint(args.out, model, preset=args.preset, dataset=dataset, seed=0,
                    train_settings={"converted_from": args.reference.name}, metrics=metrics)
    result = {"checkpoint": str(args.out), "preset": args.preset, "dataset": dataset,
              "config": dataclasses.asdict(model.config), **metrics}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        acc = metrics.get("test_accuracy")
        print(f"wrote {args.out} ({dataset}, D={model.config.embed_dims}, "
              f"{model.config.depths} blocks, {model.config.num_classes} classes"
              + (f", test accuracy {acc:.4f})" if acc is not None else ")"))
    return 0
