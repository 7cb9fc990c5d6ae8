"""``sdtforge run``: classify images on a board over its UART link.

The board keeps the id of the model it holds; the model is sent only when that id differs
from the given model's (SPRAM and block RAM lose it at power-off, so a fresh board always
loads).
"""

import json
import sys
from pathlib import Path

NAME = "run"
HELP = "classify images on a board over its serial port (loads the model when needed)"


def add_arguments(p):
    from sdtforge.boards.targets import BOARDS

    p.add_argument("images", nargs="*", type=Path,
                   help="image files: .npy uint8 arrays ([H, W] or [C, H, W]) or .png")
    p.add_argument("--board", choices=sorted(BOARDS), required=True,
                   help="the board (sets the lanes the model is compiled for)")
    p.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB1")
    p.add_argument("--model", type=Path, default=None,
                   help="integer model (.sfm); loaded when the board holds another one")
    p.add_argument("--lanes", type=int, default=None, help="lanes the bitstream was built with")
    p.add_argument("--width", type=int, default=None, help="word width of the bitstream")
    p.add_argument("--digits-test", type=int, default=0, metavar="N",
                   help="also classify the first N digits test images")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate")
    p.add_argument("--timeout", type=float, default=5.0, help="serial read timeout in seconds")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def _read_image(path):
    import numpy as np

    from sdtforge.errors import UserError

    try:
        if path.suffix == ".npy":
            a = np.load(path, allow_pickle=False)
        elif path.suffix == ".png":
            from matplotlib import image as mpimg
            a = mpimg.imread(path)
            # matplotlib reads 8-bit PNGs as floats in [0, 1].
            if a.dtype != np.uint8:
                a = np.round(a * 255)
            if a.ndim == 3:
                a = a[..., :3].mean(axis=2) if a.shape[2] in (3, 4) else a[..., 0]
        else:
            raise UserError(f"{path}: unknown image format; use .npy or .png")
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None
    if a.min() < 0 or a.max() > 255:
        raise UserError(f"{path}: pixel values must be 0..255")
    return a.astype(np.uint8)


def run(args):
    from sdtforge.boards.host import BoardClient
    from sdtforge.boards.image import model_image
    from sdtforge.boards.targets import get_board, plan_board
    from sdtforge.errors import UserError
    from sdtforge.quantize import ir

    board = get_board(args.board)
    images = [(str(p), _read_image(p)) for p in args.images]
    if args.digits_test:
        from sdtforge.model.data import load_dataset
        x, y = load_dataset("digits", "test")
        images += [(f"digits-test[{i}] (label {int(y[i])})", x[i])
                   for i in range(min(args.digits_test, len(x)))]
    img = None
    if args.model is not None:
        if not args.model.exists():
            raise UserError(f"no model file {args.model}; make one with `sdtforge quantize`")
        plan = plan_board(ir.load(args.model), board, lanes=args.lanes, width=args.width)
        img = model_image(plan.compiled)

    try:
        import serial
        port = serial.Serial(args.port, args.baud, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot open serial port {args.port}: {exc}") from None
    with port:
        client = BoardClient(port)
        info = client.info()
        if img is not None and info.model_id != img.model_id:
            print(f"loading {args.model} ({len(img.load)} bytes) ...", file=sys.stderr)
            client.load(img.load, model_id=img.model_id)
            info = client.info()
        if info.model_id == bytes(len(info.model_id)):
            raise UserError("the board holds no model; pass --model MODEL.sfm")
        results = []
        for name, a in images:
            pixels = a.reshape(-1) if a.ndim == 2 else a.transpose(1, 2, 0).reshape(-1)
            if len(pixels) != info.image_bytes:
                raise UserError(f"{name}: {len(pixels)} pixels, but the board's model takes "
                                f"{info.image_bytes}")
            r = client.classify(bytes(pixels), info.num_classes)
            results.append({"image": name, "class": r.label, "logits": list(r.logits),
                            "cycles": r.cycles})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['image']}: class {r['class']}  cycles {r['cycles']}  "
                  f"logits {' '.join(str(v) for v in r['logits'])}")
    return 0
