"""``sdtforge run``: classify images on a board over its UART link.

The model is compiled for the bitstream's hardware configuration: its build's ``config.json``
(``--config``), or the board's defaults with ``--lanes``/``--width``; the board's ``INFO``
digest must match, or nothing is loaded. The board keeps the id of a completely loaded model;
the model is sent only when that id differs from the given model's (SPRAM and block RAM lose
it at power-off, so a fresh board always loads).
"""

import json
import sys
from pathlib import Path

from . import _args

NAME = "run"
HELP = "classify images on a board over its serial port (loads the model when needed)"


def add_arguments(p):
    from sdtforge.boards.targets import BOARDS

    p.add_argument("images", nargs="*", type=Path,
                   help="image files: .npy uint8 arrays ([H, W] or [C, H, W]; an event "
                        "model's [T, C, H, W] frames) or .png")
    p.add_argument("--board", choices=sorted(BOARDS), required=True,
                   help="the board (sets the lanes the model is compiled for)")
    p.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB1")
    p.add_argument("--model", type=Path, default=None,
                   help="integer model (.sfm); loaded when the board holds another one")
    p.add_argument("--lanes", type=_args.power_of_two, default=None,
                   help=f"lanes the bitstream was built with (default: the board's: "
                        f"{_args.per_board(lambda b: b.default_lanes)})")
    p.add_argument("--width", type=_args.word_width, default=None,
                   help=f"word width of the bitstream (default: the board's: "
                        f"{_args.per_board(lambda b: b.default_width)})")
    p.add_argument("--sdram", action="store_true",
                   help="the bitstream keeps the weights in the board's SDRAM (build --sdram)")
    p.add_argument("--config", type=Path, default=None,
                   help="config.json of the bitstream's build: the model is compiled for it "
                        "(instead of --lanes/--width and the board's other defaults)")
    p.add_argument("--digits-test", type=_args.nonneg_int, default=0, metavar="N",
                   help="also classify the first N digits test images")
    p.add_argument("--baud", type=_args.positive_int, default=115200, help="UART baud rate")
    p.add_argument("--timeout", type=_args.positive_float, default=5.0,
                   help="serial read timeout in seconds")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


# The first bytes of every PNG file.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_image(path):
    """One image file as a uint8 array ([H, W] or [C, H, W]).

    ``.npy``: an array of whole numbers 0..255; ``.png``: 8-bit grey or colour (averaged to
    grey). Anything else, an unreadable file or other values are a :class:`UserError`.
    """
    import numpy as np

    from sdtforge.errors import UserError

    path = Path(path)
    if path.suffix not in (".npy", ".png"):
        raise UserError(f"{path}: unknown image format; use .npy or .png")
    try:
        if path.suffix == ".npy":
            a = np.load(path, allow_pickle=False)
            if not isinstance(a, np.ndarray):
                raise ValueError("not a single array")
        else:
            with open(path, "rb") as f:
                if f.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                    raise ValueError("not a PNG file")
            from matplotlib import image as mpimg
            a = mpimg.imread(path)
            # matplotlib reads 8-bit PNGs as floats in [0, 1].
            if a.dtype != np.uint8:
                a = np.round(a * 255)
            if a.ndim == 3:
                a = a[..., :3].mean(axis=2) if a.shape[2] in (3, 4) else a[..., 0]
    # numpy: ValueError/EOFError for a damaged .npy; Pillow (under matplotlib): OSError, or
    # SyntaxError for a damaged PNG.
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None
    if a.dtype.kind not in "buif":
        raise UserError(f"{path}: pixels must be numbers, not {a.dtype}")
    if a.ndim not in (2, 3, 4) or a.size == 0:
        raise UserError(f"{path}: an image is an [H, W] or [C, H, W] array (an event model's "
                        f"input [T, C, H, W] frames), not shape {list(a.shape)}")
    if not (np.isfinite(a).all() and (a == np.round(a)).all() and a.min() >= 0
            and a.max() <= 255):
        raise UserError(f"{path}: pixel values must be whole numbers 0..255")
    return a.astype(np.uint8)


def run(args):
    from sdtforge.boards.host import BoardClient
    from sdtforge.boards.image import model_image
    from sdtforge.boards.targets import get_board, plan_board
    from sdtforge.errors import UserError
    from sdtforge.hdl.compile import image_order
    from sdtforge.quantize import ir

    board = get_board(args.board)
    for p in args.images:
        _args.input_file(p, "image")
    if args.model is not None and not args.model.exists():
        raise UserError(f"no model file {args.model}; make one with `sdtforge quantize`")
    _args.input_file(args.model, "--model")
    _args.input_file(args.config, "--config")
    if args.config is not None and (args.lanes is not None or args.width is not None
                                    or args.sdram):
        raise UserError("--config sets the lanes, the width and where the weights are; drop "
                        "--lanes/--width/--sdram")
    _args.check_lanes_width(
        board.default_lanes if args.lanes is None else args.lanes,
        board.default_width if args.width is None else args.width)
    images = [(str(p), read_image(p)) for p in args.images]
    if args.digits_test:
        from sdtforge.model.data import load_dataset
        x, y = load_dataset("digits", "test")
        images += [(f"digits-test[{i}] (label {int(y[i])})", x[i])
                   for i in range(min(args.digits_test, len(x)))]
    img = None
    if args.model is not None:
        model = ir.load(args.model)
        if args.config is not None:
            from sdtforge.hdl.compile import AccelConfig, compile_model
            img = model_image(compile_model(model, AccelConfig.from_json(
                args.config.read_text())))
        else:
            img = model_image(plan_board(model, board, lanes=args.lanes, width=args.width,
                                         sdram=args.sdram).compiled)

    try:
        import serial
        port = serial.Serial(args.port, args.baud, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot open serial port {args.port}: {exc}") from None
    with port:
        client = BoardClient(port, deadline_s=max(10.0, 2 * args.timeout))
        info = client.info()
        if img is not None and not (info.loaded and info.model_id == img.model_id
                                    and info.config_digest == img.config_digest):
            print(f"loading {args.model} ({len(img.load)} bytes) ...", file=sys.stderr)
            client.load_model(img)      # refuses a model compiled for another configuration
            info = client.info()
        if not info.loaded:
            raise UserError("the board holds no model; pass --model MODEL.sfm")
        results = []
        for name, a in images:
            pixels = image_order(a)
            if len(pixels) != info.image_bytes:
                raise UserError(f"{name}: {len(pixels)} pixels, but the board's model takes "
                                f"{info.image_bytes}")
            r = client.classify(pixels, info.num_classes)
            results.append({"image": name, "class": r.label, "logits": list(r.logits),
                            "cycles": r.cycles})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['image']}: class {r['class']}  cycles {r['cycles']}  "
                  f"logits {' '.join(str(v) for v in r['logits'])}")
    return 0
