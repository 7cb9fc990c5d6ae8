"""A serial port whose far end is simulated gateware.

:class:`SimulatedPort` has pyserial's ``read``/``write``; bytes written are sent bit by bit on
the design's ``rx`` pin, and the ``tx`` pin is decoded back into bytes, while the Amaranth
simulator advances only inside ``read``. The host driver therefore runs unchanged against the
simulated board: the tests take the path a real board takes, pins included.
"""

from collections import deque

from amaranth.sim import Simulator

__all__ = ["SimulatedPort"]


class SimulatedPort:
    """Pyserial-like port driving the UART pins of a design in the Amaranth simulator.

    Parameters
    ----------
    design : Elaboratable
        The top (with a ``sync`` domain) to simulate.
    rx, tx : Signal
        The design's serial input and output pins.
    divisor : int
        Clock cycles per bit of the design's UART.
    timeout_cycles : int
        How many clock cycles a ``read`` waits for missing bytes before returning short,
        like a pyserial timeout.
    """

    PERIOD = 1e-8

    def __init__(self, design, rx, tx, divisor, *, timeout_cycles=200_000):
        self._rx, self._tx, self._div = rx, tx, divisor
        self._timeout = timeout_cycles
        self._to_board = deque()
        self._from_board = deque()
        self._closed = False
        self.cycles = 0
        self.sim = Simulator(design)
        self.sim.add_clock(self.PERIOD)
        self.sim.add_testbench(self._drive, background=True)
        self.sim.add_testbench(self._listen, background=True)

    async def _drive(self, ctx):
        ctx.set(self._rx, 1)
        while not self._closed:
            if not self._to_board:
                await ctx.tick()
                continue
            byte = self._to_board.popleft()
            for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                ctx.set(self._rx, bit)
                await ctx.tick().repeat(self._div)

    async def _listen(self, ctx):
        while not self._closed:
            # Polled rather than `until()`, so that close() can end this process cleanly.
            await ctx.tick()
            if ctx.get(self._tx):
                continue
            await ctx.tick().repeat(self._div + self._div // 2)  # middle of data bit 0
            byte = 0
            for i in range(8):
                byte |= ctx.get(self._tx) << i
                await ctx.tick().repeat(self._div)
            self._from_board.append(byte)  # now in the stop bit

    def _run(self, cycles):
        self.cycles += cycles
        self.sim.run_until(self.cycles * self.PERIOD)

    def close(self):
        """End the line processes (they finish within one character time)."""
        if not self._closed:
            self._closed = True
            self._run(12 * self._div)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def clock(self):
        """Simulated seconds so far (the host driver's deadlines run on this clock)."""
        return self.cycles * self.PERIOD

    def reset_input_buffer(self):
        """Drop the bytes received and not read yet (pyserial's method of that name)."""
        self._from_board.clear()

    def write(self, data):
        self._to_board.extend(bytes(data))
        return len(data)

    def read(self, n=1):
        waited = 0
        # Give the line time to carry what is still queued towards the board, then the timeout.
        budget = self._timeout + len(self._to_board) * 10 * self._div
        step = 10 * self._div
        while len(self._from_board) < n and waited < budget:
            self._run(step)
            waited += step
        return bytes(self._from_board.popleft() for _ in range(min(n, len(self._from_board))))
