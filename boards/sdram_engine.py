"""The accelerator with its weights in the ULX3S's SDRAM: engine, weight source, controller.

:class:`SDRAMEngine` puts :class:`~sdtforge.hdl.accelerator.Accelerator` (with
``external_weights``), :class:`~sdtforge.hdl.dram_weights.DRAMWeights` and
:class:`~sdtforge.boards.sdram.LiteDRAMNative` together: the loader's weight rows go to the
SDRAM, and the engine's rows come back through the tile prefetch
(:class:`~sdtforge.hdl.weight_prefetch.WeightPrefetch`: the weight stream read in order, once
per image, into an on-chip window) or, without it, one SDRAM read per event. Its streams are
the accelerator's, so the co-simulation bench (:mod:`sdtforge.sim.cocotb_accel`) drives it as
it drives the engine alone; the SDRAM pins are top-level ports (the chip model or the board's
pins), and the controller's phase-lagged SDRAM clock is the ``sdram_ps`` domain (an input
``sdram_ps_clk``).

:func:`sdram_testbench` writes the Verilog top that co-simulation runs: this engine, the chip
model (``sim/verilog/sdram_chip.v``) on its pins, and the SDRAM clock lagging ``clk``.
"""

from amaranth.hdl import ClockDomain, Elaboratable, Module, ResetInserter, Signal, Value
from amaranth.lib import wiring

from sdtforge.hdl.accelerator import Accelerator
from sdtforge.hdl.dram_weights import DRAMWeights, connect_dram_weights
from sdtforge.hdl.weight_prefetch import WeightPrefetch
from sdtforge.hdl.weight_tiles import window_rows

from .sdram import CORE_VERILOG, LiteDRAMNative, core_info, pin_widths

__all__ = ["SDRAMEngine", "sdram_engine_verilog", "sdram_testbench", "SDRAM_PERIOD_NS"]

#: The engine's clock period in co-simulation: the committed controller's (its ``sys_clk_freq``,
#: 50 MHz).
SDRAM_PERIOD_NS = 1e9 / core_info(CORE_VERILOG)["sys_clk_freq"]

#: The read data's round trip in co-simulation beyond the chip's own clock-to-data (the SDRAM
#: clock's output path, the board, the input buffer), as the controller's own testbench
#: (``sim/verilog/tb_sdram.v``) assumes: added to the chip model's ``T_AC`` and ``T_OH``.
READ_ROUND_TRIP_NS = 5.0

#: The engine's ports that the co-simulation bench drives (the accelerator's).
_STREAMS = ("load", "pixels", "result")


class SDRAMEngine(Elaboratable):
    """The accelerator whose weight rows live in SDRAM.

    Parameters
    ----------
    config : :class:`~sdtforge.hdl.compile.AccelConfig`
        The accelerator's configuration.
    pins : optional
        The SDRAM pins (:class:`~sdtforge.boards.sdram.LiteDRAMNative`'s ``pins``); top-level
        ports by default.
    queue : int
        Reads in flight at most (:class:`~sdtforge.hdl.dram_weights.DRAMWeights`).
    tile_rows : int, optional
        The largest weight tile of the programs it runs
        (:func:`~sdtforge.hdl.weight_tiles.max_tile_rows`): put the tile prefetch in front of
        the SDRAM. Without it every event's row is read from SDRAM (the plain path).
    window : int, optional
        The prefetch window's rows (default
        :func:`~sdtforge.hdl.weight_tiles.window_rows` of ``tile_rows`` and ``config``).
    verilog : str or Path
        The generated controller (:class:`~sdtforge.boards.sdram.LiteDRAMNative`; the
        committed 50 MHz one by default, a board build generates one for its clock).
    sdram_clock : bool
        Define the ``sdram_ps`` domain here, its clock an input port (co-simulation); a board
        top that clocks it from its PLL defines it itself (``False``).

    Attributes
    ----------
    accel, weights, prefetch, sdram :
        The accelerator, the weight source, the prefetch (or ``None``) and the controller;
        ``engine_reset`` (a signal) resets the accelerator alone: the weight source, the
        prefetch and the controller keep their reads in flight and their state. ``load``,
        ``pixels``,
        ``result``, ``busy``, ``load_idle`` and ``load_error`` are the accelerator's.
    """

    def __init__(self, config, *, pins=None, queue=16, tile_rows=None, window=None,
                 verilog=CORE_VERILOG, sdram_clock=True):
        if config.events != 1 and tile_rows is None:
            # Without the prefetch's window every request is an SDRAM read of one row.
            raise ValueError(f"two events per command need the tile prefetch (tile_rows): "
                             f"the plain path reads one row per request, events must be 1, "
                             f"not {config.events!r}")
        info = core_info(verilog)
        shape = config.lane_layout("weights")
        self.accel = Accelerator(config, external_weights=True)
        self.weights = DRAMWeights(shape, config.weights_depth, word_bits=info["data_width"],
                                   addr_bits=info["addr_width"], queue=queue)
        self.prefetch = None
        if tile_rows is not None:
            self.prefetch = WeightPrefetch(
                shape, config.weights_depth, tile_rows=tile_rows,
                window=window or window_rows(tile_rows, config),
                in_flight=max(2, queue // self.weights.words_per_row[0]), events=config.events)
        self.sdram = LiteDRAMNative(pins, verilog=verilog)
        self.engine_reset = Signal()
        self.sdram_ps = ClockDomain("sdram_ps", reset_less=True) if sdram_clock else None
        for name in (*_STREAMS, "busy", "load_idle", "load_error"):
            setattr(self, name, getattr(self.accel, name))

    def elaborate(self, platform):
        m = Module()
        if self.sdram_ps is not None:
            m.domains.sdram_ps = self.sdram_ps
        accel = self.accel
        m.submodules.accel = ResetInserter(self.engine_reset)(accel)
        m.submodules.weights = weights = self.weights
        m.submodules.sdram = sdram = self.sdram
        if self.prefetch is not None:
            m.submodules.prefetch = self.prefetch
        connect_dram_weights(m, accel, weights, self.prefetch)
        wiring.connect(m, weights.port.cmd, sdram.cmd)
        wiring.connect(m, weights.port.wdata, sdram.wdata)
        wiring.connect(m, sdram.rdata, weights.port.rdata)
        return m

    def ports(self):
        """The top-level ports of the engine's Verilog (the SDRAM pins are I/O ports of their
        own)."""
        out = []
        for name in _STREAMS:
            stream = getattr(self, name)
            out += [stream.valid, stream.ready, Value.cast(stream.payload)]
        out += [self.busy, self.load_idle, self.load_error]
        return out if self.sdram_ps is None else out + [self.sdram_ps.clk]


def sdram_engine_verilog(config, name, *, tile_rows=None, window=None):
    """The Verilog of :class:`SDRAMEngine` for ``config`` (module ``name``; as
    :func:`~sdtforge.hdl.verilog.accelerator_verilog` writes the engine alone), with the tile
    prefetch for ``tile_rows`` if given."""
    from amaranth.back import verilog

    from sdtforge.hdl.verilog import zero_memories_uninitialised

    engine = SDRAMEngine(config, tile_rows=tile_rows, window=window)
    with zero_memories_uninitialised():
        return verilog.convert(engine, name=name, emit_src=False, ports=engine.ports())


def sdram_testbench(top, *, ps_delay_ns=SDRAM_PERIOD_NS / 4,
                    round_trip_ns=READ_ROUND_TRIP_NS):
    """Verilog of the co-simulation top ``sdtforge_sdram_tb``: the engine ``top`` (its
    Verilog module name), the chip model on its SDRAM pins with the read data ``round_trip_ns``
    late, ``sdram_ps_clk`` = ``clk`` delayed by ``ps_delay_ns`` (90° by default, as LiteX's
    ULX3S target). Its ports are the engine's streams with the engine's names, so the
    co-simulation bench drives it unchanged."""
    from sdtforge.hdl.result import RESULT_LAYOUT

    info = core_info(CORE_VERILOG)
    widths = {"load__payload": 8, "pixels__payload": 8,
              "result__payload": RESULT_LAYOUT.size}
    ports = ["clk", "rst"]
    decl = ["    input wire clk,", "    input wire rst,"]
    for name in _STREAMS:
        flow_in = name != "result"
        for member in ("valid", "payload", "ready"):
            port = f"{name}__{member}"
            width = widths.get(port, 1)
            into = flow_in != (member == "ready")
            rng = f"[{width - 1}:0] " if width > 1 else ""
            decl.append(f"    {'input' if into else 'output'} wire {rng}{port},")
            ports.append(port)
    for port in ("busy", "load_idle", "load_error"):
        decl.append(f"    output wire {port},")
        ports.append(port)
    decl[-1] = decl[-1].rstrip(",")
    pins = pin_widths(info)
    wires = [f"    wire {f'[{w - 1}:0] ' if w > 1 else ''}{name};" for name, w in pins.items()]
    conns = [f"        .{p}({p})," for p in ports] + [f"        .{n}({n})," for n in pins]
    conns[-1] = conns[-1].rstrip(",")
    return "\n".join([
        "// Co-simulation top: the engine with its weights in SDRAM, the chip model on its pins.",
        "`timescale 1ns / 1ps",
        "module sdtforge_sdram_tb (",
        *decl,
        ");",
        *wires,
        "    reg sdram_ps_clk = 0;",
        f"    always @(clk) sdram_ps_clk <= #({ps_delay_ns}) clk;",
        f"    {top} engine (",
        "        .sdram_ps_clk(sdram_ps_clk),",
        *conns,
        "    );",
        f"    sdram_chip #(.ROW_BITS({pins['sdram_a']}), .COL_BITS({info['column_bits']}),",
        f"                 .T_AC(5.4 + {round_trip_ns}), .T_OH(2.7 + {round_trip_ns})) chip (",
        "        .clk(sdram_clk), .cke(sdram_cke), .cs_n(sdram_cs_n), .ras_n(sdram_ras_n),",
        "        .cas_n(sdram_cas_n), .we_n(sdram_we_n), .ba(sdram_ba), .a(sdram_a),",
        "        .dqm(sdram_dm), .dq(sdram_dq)",
        "    );",
        "endmodule",
        "",
    ])
