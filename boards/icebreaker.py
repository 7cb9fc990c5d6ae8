"""iCEBreaker (iCE40 UP5K) board top: PLL, UART, SPRAM weights, class on the LEDs.

The 12 MHz oscillator reaches the PLL through its package pin (``SB_PLL40_PAD``). LEDs: the
break-off PMOD's four green LEDs show the class (binary, low bits), its red LED is ``busy``;
the main board's green LED blinks (heartbeat) and its red LED lights until a model id is set.
"""

from amaranth import ClockDomain, Elaboratable, Module
from amaranth.lib import io

from .pll import ICE40PLL, ice40_pll
from .top import TICK_BITS, TIMEOUT_S, BoardTop

__all__ = ["ICEBreakerTop", "CLOCK_HZ"]

CLOCK_HZ = 12e6


class ICEBreakerTop(Elaboratable):
    """:class:`~sdtforge.boards.top.BoardTop` on the iCEBreaker's pins.

    Parameters
    ----------
    config : AccelConfig
        The accelerator build (``external_weights`` is forced: weights live in SPRAM).
    image_bytes, num_classes : int
        Model input size and classes (the host link's frame sizes).
    f_sync : float
        Requested system clock in Hz; the PLL gives the closest frequency not above it.
    baud : int
        UART rate.
    accelerator : Component, optional
        Passed to :class:`~sdtforge.boards.top.BoardTop` (a stand-in for board-only builds).
    """

    def __init__(self, config, *, image_bytes, num_classes, f_sync=30e6, baud=115200,
                 accelerator=None):
        self.pll_params = ice40_pll(CLOCK_HZ, f_sync)
        f = self.pll_params.f_out
        self.f_sync = f
        self.core = BoardTop(config, image_bytes=image_bytes, num_classes=num_classes,
                             divisor=round(f / baud), timeout=int(f * TIMEOUT_S),
                             tick_bits=TICK_BITS,
                             spram_weights=True,
                             heartbeat_bit=max(int(f).bit_length() - 1, 1),
                             accelerator=accelerator)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")   # clock and reset come from the PLL
        platform.add_resources(platform.break_off_pmod)
        clk = platform.request("clk12", dir="-")
        m.submodules.pll = ICE40PLL(self.pll_params, clk.io)
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
            led("led_g", i + 1, core.label[i])
        led("led_r", 1, core.busy)
        led("led_g", 0, core.heartbeat)
        led("led_r", 0, ~core.loaded)
        return m
