"""``sdtforge train``: train a preset from scratch and write ``OUT/checkpoint.pt``.

Runs unchanged under ``torchrun --nproc_per_node N -m sdtforge.cli train ...`` (one process
per device, DistributedDataParallel; rank 0 prints and writes). ``OUT/train-state.pt`` is
written after every epoch; ``--resume OUT/train-state.pt`` continues an interrupted run.
"""

import argparse
import json
from pathlib import Path

from . import _args

# The choices of --precision and --augment (sdtforge.model.training.PRECISIONS and
# AUGMENTATIONS, without importing torch).
PRECISIONS = ("fp32", "bf16", "fp16")
AUGMENTATIONS = ("none", "paper")


def _positive_float(text):
    value = _args._float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value:g}")
    return value

NAME = "train"
HELP = "train a model preset (float, surrogate gradients) and write OUT/checkpoint.pt"


def add_arguments(parser):
    parser.add_argument("--preset", default="digits-tiny",
                        help="model preset (see sdtforge presets)")
    parser.add_argument("--out", default="runs/digits-tiny", type=Path,
                        help="run folder; the checkpoint is written to OUT/checkpoint.pt")
    parser.add_argument("--epochs", type=_args.positive_int, default=None,
                        help="epochs (default: the preset's)")
    parser.add_argument("--seed", type=_args.seed, default=0, help="random seed")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="local dataset copy (CIFAR python batches, DVS event files)")
    parser.add_argument("--threads", type=_args.positive_int, default=None,
                        help="torch threads (default: 1 for small models, else CPUs up to 4)")
    parser.add_argument("--batch-size", type=_args.positive_int, default=None,
                        help="samples per batch per process (default: the preset's)")
    parser.add_argument("--accumulate", type=_args.positive_int, default=1,
                        help="batches per optimizer step (gradient accumulation)")
    parser.add_argument("--clip-grad", type=_positive_float, default=None, metavar="NORM",
                        help="clip the global gradient norm")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32, or mixed precision bf16 / fp16 (autocast; fp16 with a grad "
                             "scaler), meant for GPUs")
    parser.add_argument("--augment", choices=AUGMENTATIONS, default="none",
                        help="paper: the reference's CIFAR recipe (flip, RandAugment "
                             "rand-m9-n1-mstd0.4-inc1, mixup 0.5 for 2/3 of the epochs); RGB "
                             "presets only")
    parser.add_argument("--sync-bn", action="store_true",
                        help="batch-norm statistics over all processes (CUDA only)")
    parser.add_argument("--resume", type=Path, default=None, metavar="STATE",
                        help="continue from OUT/train-state.pt of an interrupted run with the "
                             "same options")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run(args):
    from sdtforge.model.presets import get_preset

    preset = get_preset(args.preset)  # fail on a bad name before importing torch
    path = args.out / "checkpoint.pt"
    # Refuse a bad output or dataset path now, not after minutes of training.
    _args.output_dir(args.out)
    _args.output_file(path)
    _args.input_dir(args.data_dir, "--data-dir")
    if args.resume is not None:
        _args.input_file(args.resume, "--resume state")
    from sdtforge.model.training import train

    _, metrics = train(args.preset, path, epochs=args.epochs, seed=args.seed,
                       data_dir=args.data_dir, threads=args.threads,
                       batch_size=args.batch_size, accumulate=args.accumulate,
                       clip_grad=args.clip_grad, precision=args.precision,
                       augment=args.augment, sync_bn=args.sync_bn, resume=args.resume)
    if metrics is None:
        return 0  # a torchrun worker other than rank 0: rank 0 reports
    if args.json:
        print(json.dumps({"checkpoint": str(path), "preset": args.preset, **metrics}, indent=2))
        return 0
    c = preset.config
    print(f"{'preset':<16}{args.preset} ({preset.dataset})")
    for key, label in [("epochs", "epochs"), ("seconds", "seconds")]:
        print(f"{label:<16}{metrics[key]}")
    print(f"{'train accuracy':<16}{metrics['train_accuracy']:.4f}")
    print(f"{'test accuracy':<16}{metrics['test_accuracy']:.4f}")
    print(f"{'parameters':<16}{c.num_parameters:,}")
    print(f"{'checkpoint':<16}{path}")
    return 0
