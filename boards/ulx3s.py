"""ULX3S-85F (ECP5 LFE5U-85F) board top: PLL, UART, class on the LEDs, weights on chip or in
the SDRAM.

The 25 MHz oscillator feeds an ``EHXPLLL``; the weights stay in the accelerator's block RAM (the
85F has 208 DP16KD) or, with a configuration's ``weight_tile_rows`` (``build --sdram``), go to
the board's SDRAM
(:class:`~sdtforge.boards.sdram_engine.SDRAMEngine`: the tile prefetch, the weight source and
a LiteDRAM controller generated for the PLL's clock; the PLL's ``CLKOS`` is the SDRAM clock,
90° behind). LEDs 0–3 show the class (binary, low bits), LED 5 lights once a model id is set,
LED 6 is ``busy`` and LED 7 the heartbeat.
"""

import tempfile

from amaranth import ClockDomain, Elaboratable, Module
from amaranth.lib import io

from .pll import ECP5PLL, ecp5_pll
from .top import TICK_BITS, TIMEOUT_S, BoardTop

__all__ = ["ULX3STop", "CLOCK_HZ"]

CLOCK_HZ = 25e6


class ULX3STop(Elaboratable):
    """:class:`~sdtforge.boards.top.BoardTop` on the ULX3S's pins.

    Parameters
    ----------
    config : AccelConfig
        The accelerator build: the weights in block RAM, or with ``weight_tile_rows`` (and
        ``external_weights``) in the SDRAM, streamed by a tile prefetch for tiles of up to
        that many rows.
    image_bytes, num_classes : int
        Model input size and classes (the host link's frame sizes).
    f_sync : float
        Requested system clock in Hz; the PLL gives the closest frequency not above it.
    baud : int
        UART rate.
    accelerator : Component, optional
        Passed to :class:`~sdtforge.boards.top.BoardTop` (a stand-in for board-only builds).
    """

    #: The SDRAM clock's lag behind the system clock (LiteX's ULX3S target: 90°).
    SDRAM_PHASE = 90

    def __init__(self, config, *, image_bytes, num_classes, f_sync=40e6, baud=115200,
                 accelerator=None):
        self.pll_params = ecp5_pll(CLOCK_HZ, f_sync)
        f = self.pll_params.f_out
        self.f_sync = f
        self.sdram = config.weight_tile_rows != 0
        if self.sdram and accelerator is None:
            from .litedram import generate
            from .sdram_engine import SDRAMEngine

            # The controller's timing (refresh interval, CAS latency) follows its clock; the
            # component keeps the generated Verilog's text.
            with tempfile.TemporaryDirectory(prefix="sdtforge-sdram-") as tmp:
                verilog, _ = generate(tmp, sys_clk_freq=round(f))
                accelerator = SDRAMEngine(
                    config, tile_rows=config.weight_tile_rows, verilog=verilog, sdram_clock=False,
                    pins=lambda platform: platform.request("sdram", 0, dir="-"))
        self.core = BoardTop(config, image_bytes=image_bytes, num_classes=num_classes,
                             divisor=round(f / baud), timeout=int(f * TIMEOUT_S),
                             tick_bits=TICK_BITS,
                             spram_weights=False,
                             heartbeat_bit=max(int(f).bit_length() - 1, 1),
                             accelerator=accelerator)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")   # clock and reset come from the PLL
        if self.sdram:
            m.domains.sdram_ps = ClockDomain("sdram_ps", reset_less=True)     # PLL CLKOS
        m.submodules.clk25 = clk = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        m.submodules.pll = ECP5PLL(self.pll_params, clk.i,
                                   lagging=("sdram_ps", self.SDRAM_PHASE) if self.sdram else None)
        m.submodules.core = core = self.core
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.uart_rx.eq(rx.i), tx.o.eq(core.uart_tx)]

        def led(name, number, value):
            buf = io.Buffer("o", platform.request(name, number, dir="-"))
            m.submodules[f"{name}_{number}"] = buf
            m.d.comb += buf.o.eq(value)

        for i in range(4):
            led("led", i, core.label[i])
        led("led", 5, core.loaded)
        led("led", 6, core.busy)
        led("led", 7, core.heartbeat)
        return m
