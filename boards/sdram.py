"""The ULX3S SDRAM controller (generated LiteDRAM Verilog) as an Amaranth component.

:class:`LiteDRAMNative` instantiates the committed ``boards/verilog/sdram_ulx3s.v`` (made by
:mod:`sdtforge.boards.litedram`; MT48LC16M16, 50 MHz, rate 1:1, 16-bit port) and adds the file
to the platform, so a build runs neither Migen nor LiteX. ``docs/boards.md`` §5d.
"""

import json
from pathlib import Path

from amaranth import C, ClockSignal, ResetSignal
from amaranth.hdl import Instance, IOPort, Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sdtforge.errors import UserError

__all__ = ["CORE_VERILOG", "PINS", "LiteDRAMNative", "core_info", "pin_widths"]

#: The committed controller (default configuration); its description is the ``.json`` beside.
CORE_VERILOG = Path(__file__).parent / "verilog" / "sdram_ulx3s.v"

#: Controller port → (subsignal of amaranth-boards' ``SDRAMResource``, width or ``None`` for
#: the configuration's). The controller drives the electrical levels (``*_n`` active low).
PINS = {
    "sdram_clk": ("clk", 1),
    "sdram_cke": ("clk_en", 1),
    "sdram_cs_n": ("cs", 1),
    "sdram_we_n": ("we", 1),
    "sdram_ras_n": ("ras", 1),
    "sdram_cas_n": ("cas", 1),
    "sdram_ba": ("ba", "bank_bits"),
    "sdram_a": ("a", "row_bits"),
    "sdram_dm": ("dqm", 2),
    "sdram_dq": ("dq", 16),
}


def pin_widths(info):
    """``{controller port: width}`` of the SDRAM pins of a controller described by ``info``
    (:func:`core_info`)."""
    return {name: info[w] if isinstance(w, str) else w for name, (_, w) in PINS.items()}


def core_info(verilog=CORE_VERILOG):
    """The configuration a generated controller was made with (the ``.json`` beside it)."""
    return json.loads(Path(verilog).with_suffix(".json").read_text())


class LiteDRAMNative(wiring.Component):
    """LiteDRAM's native user port on the ULX3S SDR SDRAM.

    The controller (bank machines, refresher, a hardware power-up sequence, ECP5 I/O
    registers on every pin) runs in ``domain``; ``sdram_domain`` is a copy of that clock
    lagging by a phase (90° at 50 MHz, as in LiteX's ULX3S target) that only clocks the
    SDRAM clock pin's ``ODDRX1F``. Addresses are word addresses in port-width units; with the
    default configuration (16-bit port) bits 8:0 are the column, 10:9 the bank, 23:11 the row.

    ============  =====  ===========================================================
    port          dir    meaning
    ============  =====  ===========================================================
    ``cmd``       In     stream of ``{we, addr}``: ``we`` 1 writes, 0 reads; a
                         command transfers when ``valid`` and ``ready`` are both 1
    ``wdata``     In     stream of ``{data, we}``: ``we`` are byte enables (bit 0 for
                         bits 7:0); see below
    ``rdata``     Out    stream of the read data, one transfer per read command, in
                         command order; see below
    ``init_done`` Out    1 once the power-up sequence has finished (about 201 µs
                         after reset at 50 MHz); ``cmd.ready`` stays 0 before
    ============  =====  ===========================================================

    **What the streams do not do.** The core ignores ``rdata.ready`` and ``wdata.valid``
    (both are tied to 1 inside this component):

    - ``rdata`` has no back-pressure. ``rdata.valid`` pulses once per read command and the
      word is lost if it is not taken in that cycle: accept every read (a FIFO with as many
      free places as reads in flight).
    - ``wdata.ready`` pulses once per write command, in command order, and the core samples
      ``wdata.payload`` in that same cycle: present each write's data (and byte enables)
      before or with its command and hold it until ``wdata.ready`` pulses.

    Measured in co-simulation with the chip model (``sim/verilog/tb_sdram.v``,
    ``docs/boards.md`` §5d; 50 MHz, rate 1:1, 2048 words each): pipelined sequential reads
    1.04 cycles per word, refreshes and row crossings included; pipelined reads and writes at
    scattered addresses 4.89 and 6.45 cycles per word; a read on its own delivers its data 6
    to 20 cycles after the command's transfer (6 when it reads the row the previous read
    left open, 9 for another row, 20 behind a refresh).

    Parameters
    ----------
    pins : object, optional
        The SDRAM resource requested with ``dir="-"`` (amaranth-boards' ``SDRAMResource``
        subsignals ``clk``, ``clk_en``, ``cs``, ``we``, ``ras``, ``cas``, ``ba``, ``a``,
        ``dqm``, ``dq``), or a mapping of the controller port names in :data:`PINS` to I/O
        values, or a callable that returns either from the platform at elaboration (a board
        top: ``lambda platform: platform.request("sdram", 0, dir="-")``). ``None`` makes
        top-level :class:`~amaranth.hdl.IOPort` s named as the controller's ports (simulation,
        Verilog of the component alone).
    verilog : str or Path
        A generated controller at rate 1:1 (its ``.json`` beside it); the committed one by
        default.
    domain, sdram_domain : str
        The controller's clock domain and the phase-lagged SDRAM clock's.

    Attributes
    ----------
    info : dict
        The controller's configuration (:func:`core_info`).
    """

    def __init__(self, pins=None, *, verilog=CORE_VERILOG, domain="sync",
                 sdram_domain="sdram_ps"):
        self.verilog = Path(verilog)
        self.info = info = core_info(self.verilog)
        self._verilog_text = self.verilog.read_text()    # the file may be a temporary one
        if info["rate"] == "1:1" and info["data_width"] != 16:
            # LiteDRAM puts a width converter in front of a wider port; its write FIFO takes
            # data on wdata.valid and its reads wait for rdata.ready, which this component
            # ties to 1 (the plain port ignores both).
            raise UserError(f"LiteDRAMNative takes the 16-bit port of the x16 chip, not a "
                            f"{info['data_width']}-bit one (LiteDRAM's width converter needs "
                            f"wdata.valid and rdata.ready)")
        if info["rate"] != "1:1":
            raise UserError(f"LiteDRAMNative takes a rate 1:1 controller, not {info['rate']} "
                            f"(1:2 needs a clk2x domain)")
        self._domain = domain
        self._sdram_domain = sdram_domain
        self.pins = pins if callable(pins) else self._pins(pins)
        aw, dw = info["addr_width"], info["data_width"]
        super().__init__({
            "cmd": In(stream.Signature(data.StructLayout({"we": 1, "addr": aw}))),
            "wdata": In(stream.Signature(data.StructLayout({"data": dw, "we": dw // 8}))),
            "rdata": Out(stream.Signature(dw)),
            "init_done": Out(1),
        })

    def _pins(self, pins):
        widths = pin_widths(self.info)
        if pins is None:
            return {name: IOPort(width, name=name) for name, width in widths.items()}
        if isinstance(pins, dict):
            ios = dict(pins)
        else:
            ios = {name: getattr(getattr(pins, sub), "io", getattr(pins, sub))
                   for name, (sub, _) in PINS.items()}
        for name, width in widths.items():
            if name not in ios or len(ios[name]) != width:
                raise UserError(f"SDRAM pin {name} must be {width} bits wide")
        return ios

    def elaborate(self, platform):
        m = Module()
        if platform is not None:
            platform.add_file(self.verilog.name, self._verilog_text)
        pins = self._pins(self.pins(platform)) if callable(self.pins) else self.pins
        m.submodules.core = Instance(
            "sdram_ulx3s",
            i_clk=ClockSignal(self._domain),
            i_rst=ResetSignal(self._domain),
            i_clk_sdram=ClockSignal(self._sdram_domain),
            o_init_done=self.init_done,
            i_user_cmd_valid=self.cmd.valid,
            o_user_cmd_ready=self.cmd.ready,
            i_user_cmd_we=self.cmd.payload.we,
            i_user_cmd_addr=self.cmd.payload.addr,
            i_user_wdata_valid=C(1, 1),  # ignored by the core
            o_user_wdata_ready=self.wdata.ready,
            i_user_wdata_data=self.wdata.payload.data,
            i_user_wdata_we=self.wdata.payload.we,
            o_user_rdata_valid=self.rdata.valid,
            i_user_rdata_ready=C(1, 1),  # ignored by the core
            o_user_rdata_data=self.rdata.payload,
            **{f"io_{name}": io for name, io in pins.items()},
        )
        return m
