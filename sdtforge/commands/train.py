"""``sdtforge train``: train a preset from scratch and write ``OUT/checkpoint.pt``."""

import json
from pathlib import Path

from . import _args

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
                        help="local dataset copy (CIFAR-10 python batches)")
    parser.add_argument("--threads", type=_args.positive_int, default=None,
                        help="torch threads (default: 1 for small models, else CPUs up to 4)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run(args):
    from sdtforge.model.presets import get_preset

    preset = get_preset(args.preset)  # fail on a bad name before importing torch
    path = args.out / "checkpoint.pt"
    # Refuse a bad output or dataset path now, not after minutes of training.
    _args.output_dir(args.out)
    _args.output_file(path)
    _args.input_dir(args.data_dir, "--data-dir")
    from sdtforge.model.training import train

    _, metrics = train(args.preset, path, epochs=args.epochs, seed=args.seed,
                       data_dir=args.data_dir, threads=args.threads)
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
