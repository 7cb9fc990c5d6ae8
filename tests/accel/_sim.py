"""Drive the whole accelerator in the Amaranth simulator through its production ports."""

from amaranth.sim import Simulator

from sdtforge.hdl.accel_isa import decode_result
from sdtforge.hdl.accelerator import Accelerator
from sdtforge.hdl.compile import image_order, load_stream_bytes


def run_accelerator(compiled, images, stall=None, external_weights=False):
    """Load ``compiled``, classify ``images`` (uint8 ``[B, C, H, W]``).

    Returns a list of ``(logits, class, cycles)``. ``stall(i)`` → True makes the testbench
    withhold ``valid``/``ready`` on beat ``i`` (random back-pressure on both sides). With
    ``external_weights`` the weights live in a behavioural single-port memory outside the
    accelerator (one cycle read latency, data held while ``en`` is low, writes win).
    """
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
        rows = {}
        read, write = dut.w_read, dut.w_write
        async for _, _, w_en, w_addr, w_data, r_en, r_addr in ctx.tick().sample(
                write.en, write.addr, write.data.as_value(), read.en, read.addr):
            if w_en:
                rows[w_addr] = w_data
            elif r_en:
                ctx.set(read.data.as_value(), rows.get(r_addr, 0))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    if external_weights:
        sim.add_process(weight_memory)
    sim.run()
    return results
