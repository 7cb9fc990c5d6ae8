"""``sdtforge eval``: test accuracy and per-layer firing rates of a checkpoint.

A float checkpoint (``.pt``) is evaluated here; an integer model (``.sfm`` IR file) is handed
to the golden model's evaluator (:mod:`sdtforge.sim.evaluate`).
"""

import json
from pathlib import Path

from . import _args

NAME = "eval"
HELP = "evaluate a checkpoint (.pt) or integer model (.sfm): test accuracy and firing rates"


def add_arguments(parser):
    parser.add_argument("checkpoint", type=Path, help="sdtforge checkpoint (.pt) or IR (.sfm)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="local dataset copy (CIFAR python batches, DVS event files)")
    parser.add_argument("--threads", type=_args.positive_int, default=None,
                        help="torch threads (default: 1 for small models, else CPUs up to 4)")
    parser.add_argument("--limit", type=_args.positive_int, default=None,
                        help="the first N test images only (default: all; a synthetic model: "
                             "N random inputs, default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args):
    from sdtforge.errors import UserError

    _args.input_file(args.checkpoint, "checkpoint")
    _args.input_dir(args.data_dir, "--data-dir")
    if args.checkpoint.suffix == ".sfm":
        try:
            from sdtforge.sim.evaluate import eval_command
        except ImportError as exc:
            raise UserError(f"evaluating an integer model (.sfm) needs sdtforge.sim.evaluate, "
                            f"which is not available in this installation ({exc})") from None
        return eval_command(args)

    from sdtforge.model.checkpoint import load_checkpoint
    from sdtforge.model.data import load_dataset
    from sdtforge.model.training import evaluate, set_threads

    model, ckpt = load_checkpoint(args.checkpoint)
    set_threads(args.threads, model.config.num_parameters)
    images, labels = load_dataset(ckpt["dataset"], "test", args.data_dir,
                                  time_steps=model.config.T)
    if args.limit is not None:
        images, labels = images[:args.limit], labels[:args.limit]
    acc, rates = evaluate(model, images, labels, firing_rates=True)
    result = {
        "checkpoint": str(args.checkpoint),
        "preset": ckpt["preset"],
        "dataset": ckpt["dataset"],
        "test_images": int(len(labels)),
        "test_accuracy": acc,
        "firing_rates": rates,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'checkpoint':<22}{args.checkpoint}")
    print(f"{'preset':<22}{ckpt['preset']} ({ckpt['dataset']}, {len(labels)} test images)")
    print(f"{'test accuracy':<22}{acc:.4f}")
    print(f"{'layer':<22}firing rate")
    for name, rate in rates.items():
        print(f"{name:<22}{rate:.4f}")
    return 0
