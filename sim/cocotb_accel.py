"""cocotb bench for the generated Verilog of the whole accelerator (``sdtforge_accel``).

Run by :func:`sdtforge.sim.cosim.cosim` in a separate simulator process; the case (load
stream file, images in stream order, expected logits, seed, stall probability, where to write
the results) comes as JSON through the ``SDTFORGE_COSIM`` variable. The bench has the usual
parts: a driver per input stream (``load``, ``pixels``), a monitor on ``result``, a scoreboard
holding the golden model's logits, and :class:`AccelBench` tying them together. Drivers and the
monitor withhold ``valid`` / ``ready`` at random. Waiting on a handshake blocks on a signal edge
rather than polling every clock, so the tens of thousands of compute cycles of an image cost
no Python time.
"""

import json
import os
import random
import time

import cocotb
import cocotb.utils
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, SimTimeoutError, with_timeout

from sdtforge.hdl.result import RESULT_LAYOUT, decode_result, result_words

PERIOD_NS = 10

#: The SDRAM chip model's counters (``sim/verilog/sdram_chip.v``): timing-rule violations and
#: the commands it saw.
SDRAM_COUNTERS = ("errors", "n_act", "n_rd", "n_wr", "n_ref", "n_pre", "n_mrs")


def _port(dut, name, member):
    return getattr(dut, f"{name}__{member}")


async def _transfer(clk, mine, theirs):
    """With ``mine`` held high, wait for the clock edge at which ``theirs`` is high too."""
    while True:
        await ReadOnly()
        if int(theirs.value):
            await RisingEdge(clk)
            return
        # The other side is stalled (maybe for a whole inference): sleep until it moves.
        await RisingEdge(theirs)


class StreamDriver:
    """Drives one input stream beat by beat, idling ``valid`` at random between beats."""

    def __init__(self, dut, name, rng, stall):
        self.clk = dut.clk
        self.valid, self.payload, self.ready = (_port(dut, name, m)
                                                for m in ("valid", "payload", "ready"))
        self.rng, self.stall = rng, stall
        self.valid.value = 0

    async def send(self, beats):
        """Send ``beats`` (ints); returns the simulation time (ns) of the last transfer."""
        for beat in beats:
            while self.rng.random() < self.stall:
                await RisingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = beat
            await _transfer(self.clk, self.valid, self.ready)
            self.valid.value = 0
        return cocotb.utils.get_sim_time("ns")


class ResultMonitor:
    """Takes result words, idling ``ready`` at random; records when each word was offered."""

    def __init__(self, dut, rng, stall):
        self.clk = dut.clk
        self.valid, self.payload, self.ready = (_port(dut, "result", m)
                                                for m in ("valid", "payload", "ready"))
        self.rng, self.stall = rng, stall
        self.ready.value = 0

    async def receive(self):
        """One result word: ``(data, last, time_ns_first_seen_valid)``."""
        while self.rng.random() < self.stall:
            await RisingEdge(self.clk)
        self.ready.value = 1
        while True:
            await ReadOnly()
            if int(self.valid.value):
                bits = int(self.payload.value)
                seen = cocotb.utils.get_sim_time("ns")
                await RisingEdge(self.clk)
                break
            await RisingEdge(self.valid)
        self.ready.value = 0
        word = data.Const(RESULT_LAYOUT, bits)
        return word.data, word.last, seen


class Scoreboard:
    """The golden model's logits per image and what the RTL returned."""

    def __init__(self, expected, num_classes):
        self.expected = expected
        self.num_classes = num_classes
        self.records = []

    def add(self, index, words, latency):
        result = decode_result(words, self.num_classes)
        logits = list(result.logits)
        record = {"image": index, "words": words, "logits": logits, "class": result.label,
                  "cycles": result.cycles, "latency": latency,
                  "ok": logits == self.expected[index]}
        self.records.append(record)
        return record


class AccelBench:
    """Driver, monitor and scoreboard around one ``sdtforge_accel`` instance."""

    def __init__(self, dut, case):
        self.dut = dut
        self.case = case
        rng = random.Random(case["seed"])
        stall = case["stall"]
        self.load = StreamDriver(dut, "load", random.Random(rng.random()), stall)
        self.pixels = StreamDriver(dut, "pixels", random.Random(rng.random()), stall)
        self.result = ResultMonitor(dut, random.Random(rng.random()), stall)
        self.scoreboard = Scoreboard(case["expected"], case["num_classes"])
        self.last_pixel_ns = []
        self.spikes = []
        self.period_ns = case.get("period_ns", PERIOD_NS)

    async def reset(self):
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def feed_images(self):
        for image in self.case["images"]:
            self.last_pixel_ns.append(await self.pixels.send(image))

    async def watch_spikes(self):
        """Read each spike map from the ``spk`` memory when the program counter leaves its
        descriptor (before a later layer can reuse the rows).

        The read waits two clock edges: a pipelined ``CONV``'s last row is written in the first
        cycles of the next ``FETCH`` (read at the ``pc`` change it showed as differing), and the
        next descriptor writes nothing before its fetch and decode are over. ``pc`` is the
        program stage's (``prog``, :class:`~sdtforge.hdl.program.ProgramSequencer`).
        """
        watch = {w["op"]: w for w in self.case["spike_watch"]}
        pc, mem = self.dut.prog.pc, self.dut.spk
        prev = int(pc.value)
        while True:
            await pc.value_change
            await ReadOnly()
            now = int(pc.value)
            if now == prev + 1 and prev in watch:
                for _ in range(2):
                    await RisingEdge(self.dut.clk)
                await ReadOnly()
                w = watch[prev]
                if prev == min(watch):
                    self.spikes.append({})
                # As bit strings: rows the map's power-of-two strides skip were never written
                # and hold x (the memories start undefined: sdtforge.hdl.verilog).
                self.spikes[-1][str(prev)] = [str(mem[w["base"] + r].value)
                                              for r in range(w["rows"])]
            prev = now
            await RisingEdge(self.dut.clk)

    async def collect(self):
        words_per_image = result_words(self.case["num_classes"])
        for index in range(len(self.case["images"])):
            words, first = [], None
            for k in range(words_per_image):
                data, last, seen = await self.result.receive()
                first = seen if first is None else first
                words.append(data)
                assert bool(last) == (k == words_per_image - 1), f"image {index}: bad last"
            # Cycles from the last pixel's transfer edge to the first result word: the
            # controller's own count plus its fixed result-stage latency.
            latency = round((first - self.last_pixel_ns[index]) / self.period_ns)
            self.scoreboard.add(index, words, latency)


@cocotb.test()
async def classify_images(dut):
    """Load the model through the load stream, classify every image, score the logits (the
    results file carries the verdict for :func:`sdtforge.sim.cosim.cosim`)."""
    case_path = os.environ["SDTFORGE_COSIM"]
    with open(case_path) as f:
        case = json.load(f)
    # File names in the case are relative to it, so the case does not name absolute paths.
    base = os.path.dirname(case_path)
    with open(os.path.join(base, case["load"]), "rb") as f:
        load_bytes = f.read()
    period = case.get("period_ns", PERIOD_NS)
    Clock(dut.clk, period, unit="ns").start()
    bench = AccelBench(dut, case)
    dut.pixels__valid.value = 0
    await bench.reset()
    start = time.perf_counter()
    loaded_ns = None

    async def run():
        nonlocal loaded_ns
        await bench.load.send(load_bytes)
        loaded_ns = cocotb.utils.get_sim_time("ns")
        if case.get("spike_watch"):
            cocotb.start_soon(bench.watch_spikes())
        feeder = cocotb.start_soon(bench.feed_images())
        await bench.collect()
        await feeder

    # A stuck RTL (a deadlock, a lost handshake) ends the run at the case's cycle limit with a
    # message, instead of simulating on.
    limit = case["max_cycles"]
    stuck = None
    try:
        await with_timeout(run(), limit * period, "ns")
    except SimTimeoutError:
        done = len(bench.scoreboard.records)
        where = ("in the load stream" if loaded_ns is None
                 else f"with {done} of {len(case['images'])} images classified")
        stuck = f"no result after {limit} cycles, {where} (the RTL is stuck)"
    end_ns = cocotb.utils.get_sim_time("ns")
    wall = time.perf_counter() - start
    # With the weights in SDRAM, the chip model's command counts and timing-rule violations.
    sdram = ({k: int(getattr(dut.chip, k).value) for k in SDRAM_COUNTERS}
             if case.get("sdram") else None)
    with open(os.path.join(base, case["results"]), "w") as f:
        json.dump({"images": bench.scoreboard.records, "wall_s": wall, "stuck": stuck,
                   "load_cycles": (loaded_ns or end_ns) // period, "sdram": sdram,
                   "sim_cycles": end_ns // period, "spikes": bench.spikes}, f, indent=1)
    # The verdict (logits, cycles, a stuck run) is the caller's, from the results file: the
    # test passes once it is written, so a run under pytest and one from the CLI end alike
    # (the cocotb runner exits the process on a failed test under pytest).
    bad = [r["image"] for r in bench.scoreboard.records if not r["ok"]]
    cocotb.log.info(stuck or (f"logits differ on images {bad}" if bad else "all logits equal"))
