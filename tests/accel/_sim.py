"""Drive the whole accelerator in the Amaranth simulator through its production ports."""

from amaranth.hdl import Const, Elaboratable, Module
from amaranth.sim import Simulator

from sdtforge.hdl.accelerator import Accelerator
from sdtforge.hdl.compile import image_order, load_stream_bytes
from sdtforge.hdl.dram_weights import DRAMWeights, connect_dram_weights
from sdtforge.hdl.result import decode_result
from sdtforge.hdl.weight_prefetch import WeightPrefetch
from sdtforge.hdl.weight_tiles import max_tile_rows

PERIOD = 1e-8
STREAM_BYTE_CYCLES = 8
IMAGE_CYCLES = 2_000_000


class _WithDRAM(Elaboratable):
    """The accelerator with its weights behind :class:`DRAMWeights` (the DRAM port left open
    for a model of LiteDRAM's native port), and :class:`WeightPrefetch` in front of it if
    ``window`` rows are given."""

    def __init__(self, config, window=None, tile_rows=None):
        self.accel = Accelerator(config, external_weights=True)
        self.source = DRAMWeights(config.lane_layout("weights"), config.weights_depth,
                                  addr_bits=16, queue=8)
        self.prefetch = None
        if window is not None:
            self.prefetch = WeightPrefetch(config.lane_layout("weights"), config.weights_depth,
                                           window=window, tile_rows=tile_rows,
                                           events=config.events)
        for name in ("load", "pixels", "result", "busy"):
            setattr(self, name, getattr(self.accel, name))

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel, m.submodules.source = accel, source = self.accel, self.source
        if self.prefetch is not None:
            m.submodules.prefetch = self.prefetch
        connect_dram_weights(m, accel, source, self.prefetch)
        return m


def _dram_port(port, latency):
    """A model of LiteDRAM's native port: commands taken two cycles in three, write data taken
    two cycles after its command, read data ``latency`` cycles after, in order, no
    back-pressure."""

    async def process(ctx):
        mem, writes, reads, now = {}, [], [], 0
        cmd_ready = w_due = r_due = False
        async for _, _, c_valid, c_we, c_addr, w_data in ctx.tick().sample(
                port.cmd.valid, port.cmd.payload.we, port.cmd.payload.addr,
                port.wdata.payload.data):
            if w_due:
                mem[writes.pop(0)[1]] = w_data
            if r_due:
                reads.pop(0)
            if c_valid and cmd_ready:
                queue = writes if c_we else reads
                last = queue[-1][0] if queue else now
                queue.append((max(last + 1, now + (2 if c_we else latency)), c_addr))
            now += 1
            cmd_ready = now % 3 != 0
            w_due = bool(writes) and writes[0][0] <= now
            r_due = bool(reads) and reads[0][0] <= now
            ctx.set(port.cmd.ready, cmd_ready)
            ctx.set(port.wdata.ready, w_due)
            ctx.set(port.rdata.valid, r_due)
            ctx.set(port.rdata.payload, mem.get(reads[0][1], 0) if r_due else 0)

    return process


def run_accelerator(compiled, images, stall=None, external_weights=False, late=None,
                    dram_latency=None, prefetch_window=None):
    """Load ``compiled``, classify ``images`` (uint8 ``[B, C, H, W]``; event frames
    ``[B, T, C, H, W]``).

    Returns a list of ``(logits, class, cycles)``. ``stall(i)`` → True makes the testbench
    withhold ``valid``/``ready`` on beat ``i`` (random back-pressure on both sides). With
    ``external_weights`` the weights live in a behavioural memory outside the accelerator
    that answers the weight stream; ``late(k)`` → True keeps it from answering in the ``k``-th
    cycle it could (with ``late`` unset every row comes the cycle after its request). With
    ``dram_latency`` they live in DRAM behind :class:`DRAMWeights` and a model of LiteDRAM's
    native port whose reads answer after that many cycles; with ``prefetch_window`` too, a
    :class:`WeightPrefetch` of that many rows streams them.
    """
    if dram_latency is not None:
        tiles = max_tile_rows(compiled) if prefetch_window else None
        dut = _WithDRAM(compiled.config, prefetch_window, tiles)
    else:
        dut = Accelerator(compiled.config, external_weights=external_weights)
    load = load_stream_bytes(compiled)
    results = []

    async def tb(ctx):
        beat = 0
        for byte in load:
            ctx.set(dut.load.payload, byte)
            ctx.set(dut.load.valid, 1)
            await ctx.tick().until(dut.load.ready)
            ctx.set(dut.load.valid, 0)
            if stall and stall(beat):
                await ctx.tick()
            beat += 1
        for image in images:
            for byte in image_order(image):
                ctx.set(dut.pixels.payload, byte)
                ctx.set(dut.pixels.valid, 1)
                await ctx.tick().until(dut.pixels.ready)
                ctx.set(dut.pixels.valid, 0)
                if stall and stall(beat):
                    await ctx.tick()
                beat += 1
            words = []
            while True:
                if stall and stall(beat):
                    await ctx.tick()
                beat += 1
                ctx.set(dut.result.ready, 1)
                _, _, valid, payload = await ctx.tick().sample(dut.result.valid,
                                                               dut.result.payload)
                ctx.set(dut.result.ready, 0)
                if valid:
                    value = payload.data
                    words.append(value)
                    if payload.last:
                        break
            result = decode_result(words, compiled.num_classes)
            results.append((list(result.logits), result.label, result.cycles))

    async def weight_memory(ctx):
        # In-order weight source: requests queue up; the oldest is answered the cycle after
        # it arrived unless ``late`` holds it back. A row on ``w_rsp`` stays until taken.
        rows, queue, k, answer = {}, [], 0, None
        req, rsp, write = dut.w_req, dut.w_rsp, dut.w_write
        two = compiled.config.events == 2
        ctx.set(req.ready, 1)
        async for _, _, w_en, w_addr, w_data, q_valid, q_addr, r_ready in ctx.tick().sample(
                write.en, write.addr, write.data.as_value(), req.valid, req.payload,
                rsp.ready):
            if w_en:
                rows[w_addr] = w_data
            if answer is not None and r_ready:
                answer = None
            if q_valid:
                queue.append(q_addr)
            if answer is None and queue:
                if not (late and late(k)):
                    answer = queue.pop(0)
                k += 1
            ctx.set(rsp.valid, answer is not None)
            if answer is None:
                continue
            if two:
                # Two events per command: both rows at once (the second one's row is read
                # whether or not the request's ``two`` wants it).
                ctx.set(rsp.payload.row.as_value(), rows.get(answer.addr, 0))
                ctx.set(rsp.payload.row1.as_value(), rows.get(answer.addr1, 0))
            else:
                ctx.set(rsp.payload.as_value(), rows.get(answer, 0))

    sim = Simulator(dut)
    collisions = []

    async def read_write_collisions(ctx):
        # An enabled spike, stream or logits read of the row written in the same cycle
        # (hdl.ram: the block RAM's read data is undefined there).
        accel = dut.accel if dram_latency is not None else dut
        ports = {"spk": accel.spike_ports, "xs": accel.stream_ports,
                 "logits": accel.emitter.logit_ports}
        signals = [s for rd, wr in ports.values() for s in (rd.en, rd.addr, wr.en, wr.addr)]
        async for _, _, *values in ctx.tick().sample(*signals):
            for k, name in enumerate(ports):
                r_en, r_addr, w_en, w_addr = values[4 * k:4 * k + 4]
                if r_en and w_en and r_addr == w_addr:
                    collisions.append((name, r_addr))

    # A cycle limit, so that a stuck RTL fails the test instead of hanging it: each stream
    # byte a few cycles (stalls included), each image far more than any case here takes
    # (digits-tiny with DRAM weights read per event: about 400 k).
    limit = (STREAM_BYTE_CYCLES * (len(load) + sum(len(image_order(i)) for i in images))
             + IMAGE_CYCLES * len(images))

    async def watchdog(ctx):
        # (Counting, not ``repeat(limit)``: a ``repeat`` left waiting at the end of a run
        # reports an error when collected.)
        ticks = 0
        async for _ in ctx.tick():
            ticks += 1
            if ticks < limit:
                continue
            raise AssertionError(f"no result after {limit} cycles: {len(results)} of "
                                 f"{len(images)} images (the RTL is stuck)")

    async def ring_collisions(ctx):
        # A used read of the prefetch's ring (a request taken) at the row it writes in the
        # same cycle (hdl.ram.ring_window), with the engine's own request pattern.
        ring = dut.prefetch.ring_ports
        two = (dut.prefetch.req.payload.two if ring.read1 is not None else Const(0))
        read1 = ring.read1.addr if ring.read1 is not None else Const(0)
        async for _, _, used, w_en, w_addr, r_addr, second, r1_addr in ctx.tick().sample(
                ring.used, ring.write.en, ring.write.addr, ring.read.addr, two, read1):
            if used and w_en and (r_addr == w_addr or (second and r1_addr == w_addr)):
                collisions.append(("ring", w_addr))

    sim.add_process(read_write_collisions)
    if dram_latency is not None and dut.prefetch is not None:
        sim.add_process(ring_collisions)
    sim.add_process(watchdog)
    sim.add_clock(PERIOD)
    sim.add_testbench(tb)
    if dram_latency is not None:
        sim.add_process(_dram_port(dut.source.port, dram_latency))
    elif external_weights:
        sim.add_process(weight_memory)
    sim.run()
    assert not collisions, f"rows read as they were written: {collisions[:8]}"
    return results
