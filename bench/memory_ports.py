"""What the clock would be with every memory port registered: a timing what-if for the ECP5.

Usage: ``python bench/memory_ports.py [--case NAME ...] [--seeds 1 2 3] [--jobs N]
[--keep DIR] [--out JSON]``.

Every ECP5 critical path the engine has had since the weights moved to block RAM starts or ends
at a ``DP16KD``: its unregistered clock-to-out (5.8 ns of a 20 ns period) and a net across the
die into the stage that uses the data, or a map address's adder and a net fanned out to the
memory's blocks (``docs/boards.md`` §4b, §5f). Registering the memories' ports costs cycles and
a change in every stage that reads them; this bench measures first what it would buy.

Each case is built per seed twice with ``sdtforge build``'s own flow
(:func:`sdtforge.boards.build.build_bitstream`, the board's top, the same nextpnr options):

- ``baseline``: as it is;
- ``registered``: on a platform whose memory lowering (Amaranth's ``get_memory`` platform
  hook) puts flip-flops on every synchronous read port's address, enable and data, and on every
  write port's address, data and enables (:class:`RegisteredPorts`). The netlist does **not**
  compute the model: every read answers two cycles late. It measures the clock the logic
  between the memories allows, not a design.

Per variant: LUT4, FF and DP16KD counts, Fmax per seed and their median, and where each seed's
critical path starts and ends (nextpnr's report, the cells' hierarchy). The cases measured
replace theirs in an existing ``--out`` file and the others stay. ``--keep DIR`` keeps
the builds (``DIR/CASE-VARIANT-SEED``); ``python bench/path_depth.py
DIR/CASE-registered-1/sdtforge.json`` then ranks the registered netlist's remaining paths.

Every build runs in a process of its own (``--jobs`` at once; see :func:`_build` for why not
threads), single-threaded: a 16-lane cifar10-2-256 ``--sdram`` build takes 8–10 minutes here,
a 32-lane digits-small one 15–35 minutes. The JSON names the commit measured (``commit``, with
``+changes`` when tracked files differ from it) and each build's model identity; a failed build
is listed with its ``error`` and left out of the medians.
"""

import argparse
import dataclasses
import json
import multiprocessing
import re
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from amaranth.hdl import Elaboratable, MemoryInstance, Module, Signal, Value

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from engine import _commit  # noqa: E402  (bench/engine.py: the checkout's commit)

#: The cases: model (a preset and firing rate for ``sdtforge synth``, or a checkpoint for
#: ``sdtforge quantize``), board, lanes, width and whether the weights are in SDRAM.
CASES = {
    "cifar10-2-256-sdram": {"synth": ("cifar10-2-256", 0.10), "board": "ulx3s-85f",
                            "lanes": 16, "width": 32, "sdram": True},
    "digits-small": {"checkpoint": "model/checkpoints/digits-small.pt", "board": "ulx3s-85f",
                     "lanes": 32, "width": 32, "sdram": False},
}
VARIANTS = ("baseline", "registered")


class RegisteredPorts(Elaboratable):
    """The lowering of one :class:`amaranth.lib.memory.Memory` with its ports registered.

    A read port's address and enable reach the memory a cycle after the engine drives them and
    its data leaves through a register, so a read answers two cycles later than the plain
    port; a write reaches the memory a cycle later. An asynchronous read port is left as it is.
    """

    def __init__(self, memory):
        self._memory = memory

    def elaborate(self, platform):
        mem = self._memory
        m = Module()
        inst = MemoryInstance(data=mem.data, attrs=mem.attrs)
        writes = {}
        for i, port in enumerate(mem.write_ports):
            regs = [Signal(len(Value.cast(v)), name=f"w{i}_{n}")
                    for n, v in (("addr", port.addr), ("data", port.data), ("en", port.en))]
            m.d[port.domain] += [r.eq(v) for r, v in zip(regs, (port.addr, port.data, port.en),
                                                         strict=True)]
            writes[port] = inst.write_port(domain=port.domain, addr=regs[0], data=regs[1],
                                           en=regs[2])
        for i, port in enumerate(mem.read_ports):
            others = tuple(writes[w] for w in port.transparent_for)
            if port.domain == "comb":
                inst.read_port(domain="comb", addr=port.addr, data=port.data, en=port.en,
                               transparent_for=others)
                continue
            addr, en = Signal(len(port.addr), name=f"r{i}_addr"), Signal(name=f"r{i}_en")
            data = Signal(len(Value.cast(port.data)), name=f"r{i}_data")
            m.d[port.domain] += [addr.eq(port.addr), en.eq(port.en),
                                 Value.cast(port.data).eq(data)]
            inst.read_port(domain=port.domain, addr=addr, data=data, en=en,
                           transparent_for=others)
        m.submodules.mem = inst
        return m


def registered_platform(board):
    """``board`` whose :meth:`~sdtforge.boards.targets.Board.platform` lowers every memory
    as :class:`RegisteredPorts` (the board's own platform class, with Amaranth's
    ``get_memory`` hook)."""
    from sdtforge.boards.targets import _import

    base = _import(board.platform_class)
    platform = type(f"Registered{base.__name__}", (base,),
                    {"get_memory": lambda _, mem: RegisteredPorts(mem)})
    kind = type(f"Registered{type(board).__name__}", (type(board),),
                {"platform": lambda _: platform()})
    return kind(**{f.name: getattr(board, f.name) for f in dataclasses.fields(board)})


def _model(case, workdir):
    """The case's integer model file, made in ``workdir``."""
    from sdtforge.cli import main

    out = Path(workdir) / "model.sfm"
    if "synth" in case:
        preset, rate = case["synth"]
        args = ["synth", "--preset", preset, "--firing-rate", str(rate)]
    else:
        args = ["quantize", str(ROOT / case["checkpoint"])]
    if main([*args, "--out", str(out)]) != 0:
        raise SystemExit(f"could not make the model: sdtforge {' '.join(args)}")
    return out


def where(cell):
    """The signal or memory a placed cell implements: its name without the suffixes Yosys and
    nextpnr add (``_TRELLIS_FF_Q_1``, ``_LUT4_Z…``, a block RAM's ``.column.row``)."""
    name = re.split(r"_(?:TRELLIS_|LUT4|CCU2C|PFUMX|L6MUX)|\$", cell)[0]
    return re.sub(r"(\.\d+)+$", "", name) or cell


def _build(job):
    """One build (``(case name, model file, variant, seed, output directory)``), in a process
    of its own: ``board.top`` with ``--sdram`` generates the LiteDRAM controller through Migen,
    whose name counter is global to a process, and Amaranth's build plan changes the working
    directory while it writes the files, so two builds in one process can mix their files."""
    from sdtforge.boards.build import build_bitstream
    from sdtforge.boards.image import model_image
    from sdtforge.boards.targets import get_board, plan_board
    from sdtforge.errors import UserError
    from sdtforge.quantize import ir

    name, model_path, variant, seed, out_dir = job
    case = CASES[name]
    row = {"seed": seed}
    try:
        board = get_board(case["board"])
        plan = plan_board(ir.load(model_path), board, lanes=case["lanes"], width=case["width"],
                          sdram=case["sdram"])
        img = model_image(plan.compiled)
        top = board.top(plan.config, image_bytes=img.image_bytes, num_classes=img.num_classes)
        if variant == "registered":
            board = registered_platform(board)
        figures = build_bitstream(board, top, out_dir, seed=seed, f_sync=top.f_sync)
    except (UserError, OSError) as exc:
        return name, variant, {**row, "error": str(exc).splitlines()[0]}
    report = json.loads((Path(out_dir) / "sdtforge.report.json").read_text())
    path = next((p["path"] for p in report.get("critical_paths", [])
                 if p["from"] == p["to"] and p["from"] != "<async>"), [])
    return name, variant, {
        **row, "model_id": img.model_id.hex(), "synth_opts": figures.get("synth_opts"),
        **{k: figures[k] for k in ("fmax_mhz", "lut4", "ff", "bram")},
        "critical_path": {"from": where(path[0]["from"]["cell"]) if path else None,
                          "to": where(path[-1]["to"]["cell"]) if path else None,
                          "ns": round(sum(s["delay"] for s in path), 2)}}


def measure(names, seeds, jobs, keep=None):
    """Build every case × variant × seed, ``jobs`` processes at once; returns ``{case:
    {variant: summary}}``. A build that fails is listed with its ``error`` and left out of
    the summary."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = (Path(keep) if keep else Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        runs = []
        for name in names:
            (work / name).mkdir(parents=True, exist_ok=True)
            model_path = _model(CASES[name], work / name)
            runs += [(name, model_path, v, s, work / f"{name}-{v}-{s}")
                     for v in VARIANTS for s in seeds]
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
            done = list(pool.map(_build, runs))
    for name, variant, row in done:
        out.setdefault(name, {}).setdefault(variant, {"seeds": []})["seeds"].append(row)
    for name, variants in out.items():
        for summary in variants.values():
            rows = [r for r in summary["seeds"] if r.get("fmax_mhz") is not None]
            if not rows:
                continue
            summary["fmax_mhz_median"] = round(statistics.median(r["fmax_mhz"] for r in rows),
                                               2)
            for key in ("lut4", "ff", "bram"):
                summary[key] = max(r[key] for r in rows)
        base, reg = variants.get("baseline", {}), variants.get("registered", {})
        if base.get("fmax_mhz_median") and reg.get("fmax_mhz_median"):
            variants["fmax_ratio"] = round(reg["fmax_mhz_median"] / base["fmax_mhz_median"], 3)
        variants["case"] = dict(CASES[name])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", nargs="+", choices=sorted(CASES), default=["cifar10-2-256-sdram"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--keep", type=Path)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/memory_ports.json")
    args = p.parse_args(argv)
    results = measure(args.case, args.seeds, args.jobs, args.keep)
    commit = _commit(args.out)
    for variants in results.values():
        variants["commit"] = commit
    # The cases measured in this run replace theirs in an existing file; the others stay.
    kept = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**kept, **results}, indent=2, sort_keys=True) + "\n")
    for name, variants in results.items():
        for v in VARIANTS:
            s = variants[v]
            for r in s["seeds"]:
                if "error" in r:
                    print(f"{name:<22} {v:<11} seed {r['seed']}: {r['error']}")
            if "fmax_mhz_median" not in s:
                continue
            fmax = ", ".join(f"{r['fmax_mhz']:.2f}" for r in s["seeds"] if "error" not in r)
            print(f"{name:<22} {v:<11} Fmax {s['fmax_mhz_median']:6.2f} MHz median ({fmax}); "
                  f"{s['lut4']} LUT4, {s['ff']} FF, {s['bram']} DP16KD")
        print(f"{name:<22} registered / baseline: {variants.get('fmax_ratio')}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
