"""``sdtforge presets``: list the model presets."""

import json

NAME = "presets"
HELP = "list the model presets (shape, time steps, tokens, parameters)"


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def rows():
    """One dict per preset, in table order (no torch needed)."""
    from sdtforge.model.presets import PRESETS

    out = []
    for name, p in PRESETS.items():
        c = p.config
        out.append({
            "name": name,
            "dataset": p.dataset,
            "input": f"{c.in_channels}x{c.img_size[0]}x{c.img_size[1]}"
                     + (" events" if c.encoding == "events" else ""),
            "encoding": c.encoding,
            "dvs": c.dvs,
            "D": c.embed_dims,
            "blocks": c.depths,
            "T": c.T,
            "pooling": c.pooling_stat,
            "tokens": c.num_tokens,
            "classes": c.num_classes,
            "params": c.num_parameters,
            "epochs": p.epochs,
            "description": p.description,
        })
    return out


def run(args):
    table = rows()
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    cols = ["name", "dataset", "input", "D", "blocks", "T", "pooling", "tokens", "params"]
    cells = [[str(r[c]) if c != "params" else f"{r[c]:,}" for c in cols] for r in table]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    return 0
