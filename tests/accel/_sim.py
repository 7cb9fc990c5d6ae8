"""Drive the whole accelerator in the Amaranth simulator through its production ports."""

from amaranth.sim import Simulator

from sdtforge.hdl.accel_isa import decode_result
from sdtforge.hdl.accelerator import Accelerator
from sdtforge.hdl.compile import image_order, load_stream_bytes


def run_accelerator(compiled, images, stall=None, external_weights=False, late=None):
    """Load ``compiled``, classify ``images`` (uint8 ``[B, C, H, W]``).

    Returns a list of ``(logits, class, cycles)``. ``stall(i)`` → True makes the testbench
    withhold ``valid``/``ready`` on beat ``i`` (random back-pressure on both sides). With
    ``external_weights`` the weights live in a behavioural memory outside the accelerator
    that answers the weight stream; ``late(k)`` → True keeps it from answering in the ``k``-th
    cycle it could (with ``late`` unset every row comes the cycle after its request).
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
        # In-order weight source: requests queue up; the oldest is answered the cycle after
        # it arrived unless ``late`` holds it back. A row on ``w_rsp`` stays until taken.
        rows, queue, k, answer = {}, [], 0, None
        req, rsp, write = dut.w_req, dut.w_rsp, dut.w_write
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
                    answer = rows.get(queue.pop(0), 0)
                k += 1
            ctx.set(rsp.valid, answer is not None)
            if answer is not None:
                ctx.set(rsp.payload.as_value(), answer)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    if external_weights:
        sim.add_process(weight_memory)
    sim.run()
    return results
