"""``sdtforge report``: Markdown report with plots for a model and its runs."""

import json
from pathlib import Path

from . import _args

NAME = "report"
HELP = "write report.md and PNG plots: accuracy, firing rates, cycles, energy, resources"


def add_arguments(p):
    from sdtforge.hdl.compile import AccelConfig
    from sdtforge.report import DEFAULT_IMAGES

    p.add_argument("model", type=Path, help="integer model file (.sfm)")
    p.add_argument("--out", type=Path, default=Path("out/report"), help="output directory")
    p.add_argument("--cosim", type=Path, help="JSON result of `sdtforge cosim --json`")
    p.add_argument("--build", type=Path, action="append", default=[],
                   help="report.json of a `sdtforge build` (repeat for several boards)")
    p.add_argument("--asic", type=Path, help="asic.json of `sdtforge build --target asic`")
    p.add_argument("--images", type=_args.positive_int, default=DEFAULT_IMAGES,
                   help="test images for firing rates, cycles and energy")
    p.add_argument("--lanes", type=_args.power_of_two, default=AccelConfig.lanes,
                   help="PE lanes P of the cycle model (a power of two, at most W)")
    p.add_argument("--width", type=_args.word_width, default=AccelConfig.width,
                   help=f"spike word width W of the cycle model (a power of two, at least "
                        f"{_args.MIN_WIDTH})")
    p.add_argument("--data-dir", type=Path, help="dataset directory (CIFAR-10 models)")


def _check_json(path, option):
    """``path`` holds one JSON object (the report reads its fields)."""
    from sdtforge.errors import UserError

    if path is None:
        return
    _args.input_file(path, option)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{option} {path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{option} {path} does not hold a JSON object")


def run(args):
    from sdtforge.report import collect, write_report

    _args.input_file(args.model, "model")
    _check_json(args.cosim, "--cosim")
    for path in args.build:
        _check_json(path, "--build")
    _check_json(args.asic, "--asic")
    _args.input_dir(args.data_dir, "--data-dir")
    _args.output_dir(args.out)
    for name in ("report.md", "report.json"):
        _args.output_file(args.out / name)
    _args.check_lanes_width(args.lanes, args.width)
    report = collect(args.model, cosim=args.cosim, builds=args.build, asic=args.asic,
                     images=args.images,
                     lanes=args.lanes, width=args.width, data_dir=args.data_dir)
    path = write_report(report, args.out)
    a = report["accuracy"]
    print(f"wrote {path}")
    def pct(v):
        return "not run" if v is None else f"{100 * v:.2f} %"

    print(f"  accuracy: float {pct(a['float'])}, integer {pct(a['integer'])}, "
          f"RTL {pct(a['rtl'])}")
    print(f"  {report['cycles']['mean_per_image']:.0f} cycles/image, "
          f"{report['energy']['total_uj']:.3f} µJ/image")
    return 0
