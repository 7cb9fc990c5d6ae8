"""Block diagram of a component, read from its elaborated netlist.

:func:`component_graph` elaborates a component one level deep and finds which of its
submodules feed which: every assignment of the component's own netlist (the ``wiring.connect``
calls and the controller's logic, inside its FSM too) links the submodule ports it reads to the
submodule ports it drives. Ports belong to submodules through their signatures (components),
their port lists (``lib.memory.Memory``) or their two ends (``lib.fifo`` queues: ``w`` and
``r``); what belongs to none is the component's own logic,
shown as ``control``, and its own ports are ``in`` and ``out``. :func:`draw` lays the graph out
in columns by distance from the inputs and writes a PNG with matplotlib.

``python -m sdtforge.hdl.diagram [--model M.sfm | --lanes P --width W] --out FILE.png``
draws the accelerator (``docs/architecture.md`` §1 shows it).
"""

import argparse
import dataclasses
from collections import defaultdict
from dataclasses import dataclass

from amaranth.hdl import Fragment, Value
from amaranth.hdl._ast import Assign, Switch
from amaranth.lib import fifo, memory, wiring

__all__ = ["Graph", "component_graph", "draw"]

CONTROL, IN, OUT = "control", "in", "out"


@dataclass(frozen=True)
class Graph:
    """``nodes``: ``(name, kind)`` in elaboration order (``kind``: the submodule's class);
    ``edges``: ``{(source, target): sorted (source port, target port) pairs}``."""

    nodes: tuple
    edges: dict

    def table(self):
        """The edges as Markdown table rows (``| from | to | ports |``)."""
        rows = ["| from | to | ports (from → to) |", "|---|---|---|"]
        for (a, b), ports in sorted(self.edges.items()):
            rows.append(f"| {a} | {b} | {', '.join(f'{p} → {q}' for p, q in ports)} |")
        return "\n".join(rows)


def _signals(value):
    return Value.cast(value)._rhs_signals()


def _port_owners(top, fragment):
    # A port of the top belongs to ``in`` or ``out`` by the flow of its member (a stream's
    # ``ready`` included); a stream's ready is marked, since it runs against the data.
    owner = {}
    for path, _, value in top.signature.flatten(top):
        side = IN if top.signature.members[path[0]].flow == wiring.In else OUT
        for sig in _signals(value):
            owner[id(sig)] = (side, path[0], path[-1] == "ready")
    nodes = []
    for sub, name, _ in fragment.subfragments:
        origin = sub.origins[0] if sub.origins else None
        nodes.append((name, type(origin).__name__))
        # (member, backward, value): ``backward`` marks a handshake that runs against the data.
        if isinstance(origin, memory.Memory):     # (a Component with no members of its own)
            members = [(kind, path[-1] == "ready", value)
                       for kind, ports in (("read", origin.read_ports),
                                           ("write", origin.write_ports))
                       for port in ports
                       for path, _, value in port.signature.flatten(port)]
        elif isinstance(origin, wiring.Component):
            members = [(path[0], path[-1] == "ready", value)
                       for path, _, value in origin.signature.flatten(origin)]
        elif isinstance(origin, fifo.FIFOInterface):
            members = [(end, (end, part) in (("w", "rdy"), ("r", "en")),
                        getattr(origin, f"{end}_{part}"))
                       for end in "wr" for part in ("data", "en", "rdy")]
        else:
            continue
        for member, backward, value in members:
            for sig in _signals(value):
                owner[id(sig)] = (name, member, backward)
    return nodes, owner


def _assignments(statements):
    for stmt in statements:
        if isinstance(stmt, Assign):
            yield stmt
        elif isinstance(stmt, Switch):
            for _, body, *_ in stmt.cases:
                yield from _assignments(body)


def component_graph(top, platform=None):
    """The :class:`Graph` of ``top``'s direct submodules (see the module docstring)."""
    fragment = Fragment.get(top, platform)
    nodes, owner = _port_owners(top, fragment)
    edges = defaultdict(set)
    logic = (CONTROL, "logic", False)
    for stmts in fragment.statements.values():
        for stmt in _assignments(stmts):
            targets = [owner.get(id(sig), logic) for sig in stmt.lhs._lhs_signals()]
            if all(backward for _, _, backward in targets):
                continue        # a stream's ready: handshake, not data
            # An output port read back inside is the logic that drives it; a ready read
            # (to gate an enable) is handshake, not data.
            sources = {logic if o[0] == OUT else o
                       for o in (owner.get(id(sig), logic) for sig in stmt.rhs._rhs_signals())
                       if not o[2]}
            for a, pa, _ in sources:
                for b, pb, _ in targets:
                    if a != b:
                        edges[a, b].add((pa, pb))
    # Every submodule is a node; the ports and the top's logic only where an edge meets them.
    used = {n for pair in edges for n in pair} | {n for n, _ in nodes}
    kinds = [(IN, "ports"), (CONTROL, "logic"), *nodes, (OUT, "ports")]
    return Graph(nodes=tuple((n, k) for n, k in kinds if n in used),
                 edges={pair: tuple(sorted(p)) for pair, p in sorted(edges.items())})


def _columns(graph):
    """Column of each node: its distance from ``in`` (breadth first), ``out`` last."""
    succ = defaultdict(list)
    for a, b in graph.edges:
        succ[a].append(b)
    rank = {IN: 0}
    frontier = [IN]
    while frontier:
        nxt = []
        for a in frontier:
            for b in sorted(succ[a]):
                if b not in rank:
                    rank[b] = rank[a] + 1
                    nxt.append(b)
        frontier = nxt
    last = max(rank.values(), default=0) + 1
    for name, _ in graph.nodes:
        rank.setdefault(name, last - 1)
    rank[OUT] = last
    return rank


def draw(graph, path, title=None):
    """Write ``graph`` as a PNG at ``path`` (deterministic: no metadata, fixed layout)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rank = _columns(graph)
    columns = defaultdict(list)
    for name, kind in graph.nodes:
        columns[rank[name]].append((name, kind))
    height = max(len(c) for c in columns.values())
    pos = {}
    for col, members in columns.items():
        for i, (name, _) in enumerate(members):     # each column centred on y = 0
            pos[name] = (col * 3.2, (len(members) - 1) / 2 - i)
    fig, ax = plt.subplots(figsize=(3 + 2.2 * len(columns), 1.5 + 1.1 * height))
    for a, b in graph.edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        ax.annotate("", xy=(xb, yb), xytext=(xa, ya), zorder=1,
                    arrowprops={"arrowstyle": "-|>", "color": "0.55", "lw": 0.6,
                                "shrinkA": 16, "shrinkB": 16, "mutation_scale": 8,
                                "connectionstyle": "arc3,rad=0.06"})
    for name, kind in graph.nodes:
        x, y = pos[name]
        ax.text(x, y, f"{name}\n{kind}", ha="center", va="center", fontsize=7, zorder=2,
                bbox={"boxstyle": "round", "fc": "white" if name not in (IN, OUT) else "0.9",
                      "ec": "black", "lw": 0.8})
    ax.set_xlim(-1.5, max(x for x, _ in pos.values()) + 1.5)
    ax.set_ylim(-height / 2 - 0.5, height / 2 + 0.5)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def main(argv=None):
    from .accelerator import Accelerator
    from .compile import AccelConfig, compile_model

    parser = argparse.ArgumentParser(description="Draw the accelerator's block diagram.")
    parser.add_argument("--model", help="integer model (.sfm) to size the accelerator for")
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--table", help="also write the edges as a Markdown table here")
    parser.add_argument("--all-stages", action="store_true",
                        help="build the stages the model does not need too (the POOL_OR stage)")
    args = parser.parse_args(argv)
    if args.model:
        from sdtforge.quantize import ir
        config = compile_model(ir.load(args.model), lanes=args.lanes, width=args.width).config
    else:
        config = AccelConfig(lanes=args.lanes, width=args.width)
    if args.all_stages:
        config = dataclasses.replace(config, pool_or=1)
    graph = component_graph(Accelerator(config))
    draw(graph, args.out, title=f"Accelerator (P = {config.lanes}, W = {config.width})")
    if args.table:
        with open(args.table, "w") as f:
            f.write(graph.table() + "\n")


if __name__ == "__main__":
    main()
