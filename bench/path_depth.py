"""Rank an ECP5 netlist's register-to-register paths before place and route.

Usage: ``python bench/path_depth.py BUILD/sdtforge.json [--over NS] [--groups N]
[--path REGEX] [--json]``.

nextpnr reports one critical path per clock, so a design whose slack histogram has thousands
of failing endpoints shows its paths one build (ten minutes at 32 lanes) at a time. This tool
reads the synthesized netlist that ``sdtforge build`` leaves in its output directory (Yosys's
JSON after ``synth_ecp5``) and estimates every endpoint's arrival time with a fixed delay
model: a LUT4 level is its logic delay plus one net, a ``PFUMX`` / ``L6MUX21`` adds a little and
no net (they share the slice), a carry chain's ripple is nearly free, and a paths starts at a
flip-flop's clock-to-out or a ``DP16KD``'s unregistered output. Endpoints are flip-flop inputs
(``DI``, ``CE``, ``LSR``, ``M``) and block and distributed RAM inputs. They are grouped by
register (or RAM) name and pin, and each group is printed with its worst estimate, its size and
where its worst path starts.

The model knows no placement: long nets (a block RAM's address fanned out across the die, a
far block RAM's data) come out shorter than nextpnr's, so the estimate ranks paths, it does not
predict Fmax. Calibrated on the 32-lane ULX3S top (``docs/boards.md`` §4b): nextpnr's critical
path of 18.5 ns was estimated at 13.5 ns.
"""

import argparse
import collections
import json
import re
import sys

from sdtforge.hdl.synth import YosysNetlist

#: Nanoseconds per net between cells, LUT4, wide-function mux, flip-flop clock-to-out and setup,
#: ``DP16KD`` clock-to-out (unregistered output, speed grade 6).
NET, LUT, MUX, FF_CO, SETUP, BRAM_CO = 0.75, 0.35, 0.25, 0.45, 0.2, 4.4

#: Input pins that end a path, per cell type.
ENDPOINTS = {"TRELLIS_FF": re.compile(r"^(DI|CE|LSR|M)$"),
             "DP16KD": re.compile(r"^(AD|DI|WE|CE|OCE|CS)"),
             "TRELLIS_DPR16X4": re.compile(r"^(WAD|DI|WRE)")}
#: Cells whose outputs are combinational in their inputs.
COMBINATIONAL = {"LUT4", "PFUMX", "L6MUX21", "CCU2C", "TRELLIS_DPR16X4"}


def _arcs(kind, pin):
    """``[(output pin, ns)]`` reached combinationally from input ``pin`` of a ``kind`` cell."""
    if kind == "LUT4":
        return [("Z", LUT)]
    if kind in ("PFUMX", "L6MUX21"):
        return [("Z", MUX)]
    if kind == "CCU2C":
        if pin == "CIN":
            return [("COUT", 0.05), ("S0", 0.3), ("S1", 0.35)]
        if pin.endswith("0"):
            return [("COUT", 0.45), ("S0", 0.4), ("S1", 0.45)]
        return [("COUT", 0.4), ("S1", 0.4)]
    if kind == "TRELLIS_DPR16X4" and pin.startswith("RAD"):
        return [("DO", 0.5)]
    return []


class Netlist(YosysNetlist):
    """The top module of a Yosys JSON netlist, with arrival estimates per net bit."""

    def __init__(self, netlist):
        super().__init__(netlist)
        self.arrival, self.pred = {}, {}
        for bit, (cell_name, _) in self.drivers.items():
            kind = self.cells[cell_name]["type"]
            if kind == "TRELLIS_FF":
                self.arrival[bit] = FF_CO
            elif kind == "DP16KD":
                self.arrival[bit] = BRAM_CO
            elif kind not in COMBINATIONAL:
                self.arrival[bit] = 0.0

    def arrive(self, bit):
        """Estimated arrival of ``bit`` (iterative depth-first: paths are thousands deep)."""
        stack = [bit]
        while stack:
            b = stack[-1]
            if b in self.arrival or not isinstance(b, int) or b not in self.drivers:
                stack.pop()
                continue
            cell_name, out_pin = self.drivers[b]
            cell = self.cells[cell_name]
            inputs = [(pin, ib, ns) for pin, bits in cell["connections"].items()
                      if cell["port_directions"].get(pin) == "input"
                      for o, ns in _arcs(cell["type"], pin) if o == out_pin
                      for ib in bits if isinstance(ib, int)]
            todo = [ib for _, ib, _ in inputs if ib not in self.arrival and ib in self.drivers]
            if todo:
                stack.extend(todo)
                continue
            best, via = 0.0, None
            for pin, ib, ns in inputs:
                net = 0.0 if self._same_slice(cell["type"], pin, ib) else NET
                t = self.arrival.get(ib, 0.0) + net + ns
                if t > best:
                    best, via = t, ib
            self.arrival[b], self.pred[b] = best, via
            stack.pop()
        return self.arrival.get(bit, 0.0)

    def _same_slice(self, kind, pin, bit):
        source = self.driver_type(bit)
        if source is None:
            return False
        return ((kind == "CCU2C" and pin == "CIN")
                or (kind in ("PFUMX", "L6MUX21") and source in ("LUT4", "PFUMX")))

    def endpoints(self):
        """``[(ns, endpoint name, pin, bit)]``, latest first."""
        out = []
        for cell_name, cell in self.cells.items():
            pins = ENDPOINTS.get(cell["type"])
            if pins is None:
                continue
            name = (self.names.get(cell["connections"]["Q"][0], cell_name)
                    if cell["type"] == "TRELLIS_FF" else cell_name)
            for pin, bits in cell["connections"].items():
                if pins.match(pin):
                    out += [(self.arrive(b) + NET + SETUP, name, pin, b)
                            for b in bits if isinstance(b, int)]
        return sorted(out, key=lambda e: (-e[0], e[1], e[2]))

    def path(self, bit):
        """The worst path into ``bit``: ``[(ns, net name, driver type)]``, source last."""
        out = []
        while bit is not None:
            out.append((round(self.arrival.get(bit, 0.0), 2), self.names.get(bit, "?"),
                        self.driver_type(bit) or "input"))
            bit = self.pred.get(bit)
        return out


def group_name(name, pin):
    """A register's or RAM's name without bit indices and numbered suffixes, and the pin."""
    name = re.sub(r"_\d+$", "", re.sub(r"\$\d+", "$", re.sub(r"\[\d+\]", "", name)))
    return f"{name}.{re.sub(r'[0-9]+$', '', pin)}"


def rank(netlist, over):
    """Endpoint groups over ``over`` ns: ``[{"group", "ns", "endpoints", "source", "nets"}]``."""
    groups = collections.OrderedDict()
    for ns, name, pin, bit in netlist.endpoints():
        if ns <= over:
            break
        key = group_name(name, pin)
        if key not in groups:
            path = netlist.path(bit)
            groups[key] = {"group": key, "ns": round(ns, 2), "endpoints": 0,
                           "source": path[-1][1], "nets": len(path)}
        groups[key]["endpoints"] += 1
    return list(groups.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("netlist", help="Yosys JSON netlist (BUILD/sdtforge.json)")
    parser.add_argument("--over", type=float, default=10.0,
                        help="list endpoint groups estimated over this many ns")
    parser.add_argument("--groups", type=int, default=30, help="groups to print")
    parser.add_argument("--path", metavar="REGEX",
                        help="print the worst path into the first endpoint group matching it")
    parser.add_argument("--json", action="store_true", help="print the groups as JSON")
    args = parser.parse_args(argv)
    try:
        with open(args.netlist) as f:
            netlist = Netlist(json.load(f))
    except (OSError, ValueError, KeyError) as e:
        print(f"path_depth: cannot read {args.netlist}: {e}", file=sys.stderr)
        return 2
    groups = rank(netlist, args.over)
    if args.json:
        print(json.dumps(groups, indent=1))
    else:
        ends = netlist.endpoints()
        print(f"{len(ends)} endpoints, {sum(e[0] > args.over for e in ends)} over {args.over} ns")
        for g in groups[:args.groups]:
            print(f"{g['ns']:6.2f} ns {g['endpoints']:5d}  {g['group']}  <- {g['source']} "
                  f"({g['nets']} nets)")
    if args.path:
        for ns, name, pin, bit in netlist.endpoints():
            if re.search(args.path, group_name(name, pin)):
                print(f"worst path into {name}.{pin} ({ns:.2f} ns), source last:")
                for t, net, kind in netlist.path(bit):
                    print(f"  {t:6.2f}  {kind:10s} {net}")
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
