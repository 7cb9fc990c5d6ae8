"""``sdtforge report``: Markdown report with plots for a model and its runs."""

from pathlib import Path

NAME = "report"
HELP = "write report.md and PNG plots: accuracy, firing rates, cycles, energy, resources"


def add_arguments(p):
    p.add_argument("model", type=Path, help="integer model file (.sfm)")
    p.add_argument("--out", type=Path, default=Path("out/report"), help="output directory")
    p.add_argument("--cosim", type=Path, help="JSON result of `sdtforge cosim --json`")
    p.add_argument("--build", type=Path, action="append", default=[],
                   help="report.json of a `sdtforge build` (repeat for several boards)")
    p.add_argument("--asic", type=Path, help="asic.json of `sdtforge build --target asic`")
    p.add_argument("--images", type=int, default=100,
                   help="test images for firing rates, cycles and energy")
    p.add_argument("--lanes", type=int, default=8, help="PE lanes P of the cycle model")
    p.add_argument("--width", type=int, default=16, help="spike word width W of the cycle model")
    p.add_argument("--data-dir", type=Path, help="dataset directory (CIFAR-10 models)")


def run(args):
    from sdtforge.errors import UserError
    from sdtforge.report import collect, write_report

    if args.images < 1:
        raise UserError(f"--images must be at least 1, not {args.images}")
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
