"""8N1 UART receiver and transmitter with ``lib.stream`` byte ports.

The host link of every board top. ``divisor`` is clock cycles per bit (``f_clk // baud``).
The receiver samples each bit in its middle and flags a framing error (missing stop bit) and an
overrun (characters lost because the previous one was not taken), which the frame decoder above
it turns into an error frame instead of hanging or dropping a frame silently.
"""

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "RxPayload"]

RxPayload = data.StructLayout({"data": 8, "error": 1, "overrun": 1})


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"UART divisor must be an integer of at least 4, not {divisor!r}")


class UARTRx(wiring.Component):
    """UART receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    rx : In(1)
        Serial input (idle high); synchronized internally.
    stream : Out(stream.Signature(RxPayload))
        One payload per received character; ``error`` is set when the stop bit was low.
        The receiver does not wait for ``ready``: a byte not taken before the next one is
        complete is overwritten, and the new one has ``overrun`` set (so does every later one
        until one is taken in time).
    """

    def __init__(self, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "stream": Out(stream.Signature(RxPayload))})

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        div = self._divisor
        timer = Signal(range(div * 3 // 2 + 1))
        shreg = Signal(8)
        bits = Signal(range(9))

        with m.If(self.stream.ready):
            m.d.sync += self.stream.valid.eq(0)

        with m.FSM():
            with m.State("Idle"):
                with m.If(~rx):
                    # Wait one and a half bits: to the middle of data bit 0.
                    m.d.sync += [timer.eq(div + div // 2 - 1), bits.eq(0)]
                    m.next = "Data"
            with m.State("Data"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), bits.eq(bits + 1),
                                 timer.eq(div - 1)]
                    with m.If(bits == 7):
                        m.next = "Stop"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("Stop"):
                with m.If(timer == 0):
                    m.d.sync += [
                        self.stream.payload.data.eq(shreg),
                        self.stream.payload.error.eq(~rx),
                        self.stream.payload.overrun.eq(self.stream.valid & ~self.stream.ready),
                        self.stream.valid.eq(1),
                    ]
                    m.next = "Idle"
                    with m.If(~rx):
                        # A low stop bit: wait for the line to go idle before hunting again.
                        m.next = "Break"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("Break"):
                with m.If(rx):
                    m.next = "Idle"
        return m


class UARTTx(wiring.Component):
    """UART transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    tx : Out(1)
        Serial output (idle high).
    stream : In(stream.Signature(8))
        Bytes to send; one is taken whenever the transmitter is idle.
    """

    def __init__(self, divisor):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"tx": Out(1, init=1), "stream": In(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div))
        shreg = Signal(10, init=0x3FF)  # stop, data[7:0], start — shifted out LSB first
        bits = Signal(range(11))

        m.d.comb += self.tx.eq(shreg[0])
        with m.If(bits == 0):
            m.d.comb += self.stream.ready.eq(1)
            with m.If(self.stream.valid):
                m.d.sync += [
                    shreg.eq(Cat(Const(0, 1), self.stream.payload, Const(1, 1))),
                    bits.eq(10), timer.eq(div - 1),
                ]
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), bits.eq(bits - 1),
                         timer.eq(div - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m
