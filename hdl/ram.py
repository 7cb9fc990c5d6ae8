"""Block RAMs without read/write collision logic: the loader-filled, spike and stream memories.

Amaranth gives a non-transparent read port *read-old* semantics: a read of the row written in
the same cycle returns the row's previous contents. iCE40 and ECP5 block RAMs leave that case
undefined, so Yosys emulates it for every such memory: it delays the write by a cycle
(registers for the write's address, data and enable) and puts an address comparator and a
multiplexer on the read data. That is one flip-flop per data bit and a multiplexer on the read
path — on the ECP5 build, between the weight memory's output and the PE accumulators, its
critical path.

The memories the loader fills (weights, biases, thresholds, shifts, program and the pixel
memory's zero points) never need it: the loader writes them only while the engine is idle
(``Loader.enable`` is ``~busy``; the controller leaves its idle state only once the loader is),
and the engine reads them only while busy, so no read whose data is used meets a write. (The
pixel memory's other writer, image reception, ends before the pixel layer reads it.) Such a
memory is marked with Yosys' own attribute ``no_rw_check`` ("the read data on a collision is
a don't-care"), and :data:`YOSYS_COMMANDS`, run after the design is read, apply it to the
read ports, which Amaranth emits already synchronous (Yosys itself looks at the attribute only
when it merges an asynchronous read with its register). Simulation keeps read-old; the RTL's
results cannot differ, as no used read collides.

The spike memory is marked too (:func:`disjoint_maps`), for another reason: an operation's
reads and its writes go to different spike maps, which the compiler places at disjoint
addresses (:func:`~.compile.plan_memories` asserts it), and an operation starts only once the
previous one has written its last word; the read port is enabled only by a stage that uses
the data (the fetch, the SDSA and pool stages). The accelerator registers the spike write
(address, data, enables) before the memory, as the emulation's delayed write did, so the write
path stays short; the accelerator testbench (``tests/accel/_sim.py``) checks in every cycle of
every simulated image that no enabled spike read meets the write at the same row.

The stream memory is marked as well (:func:`rows_apart`), though the engine reads and writes it
in place: a residual (``ADD``) row reads its stream word while the row gathers and writes the
sum once the write-back has it, by then the row nest reads a later row; the pooled merge reads
a row in its read phase and writes it after; ``STREAM_LIF`` and ``HEAD_SUM`` only read it.
Its read port is enabled only where its data is used, and the same testbench checks that no
enabled stream read meets the write at its row. Its write is registered in the accelerator,
as the spike write is: the residual sum runs from the stream memory's output through the
write-back's adders into its input, and without the emulation's delayed write nothing broke
that path (the ULX3S lost 8 MHz, measured; ``docs/boards.md`` §4b).

The logits memory is marked with it: the head writes it while the program runs, and the result
emitter (:class:`~.result.ResultEmitter`) enables its read port only after ``start``, once the
program has ended.

The tile prefetch's ring (:func:`ring_window`) fills the row after its last fetched one while
the engine reads fetched rows only, so no used read meets the write; with two rows per request
the second read shares the write's block RAM port, which the emulation would forbid (Yosys then
stores the ring twice: 60 ``DP16KD`` instead of 30 for cifar10-2-256's window). The membrane
and SDSA memories keep the emulation.
"""

from types import SimpleNamespace

from amaranth.hdl import Value
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["NO_RW_CHECK", "YOSYS_COMMANDS", "disjoint_maps", "loader_filled", "ring_window",
           "rows_apart", "registered_read", "registered_write", "shared_memories"]

#: Yosys' attribute for a memory whose read data on a same-address write is a don't-care.
NO_RW_CHECK = "no_rw_check"

#: Yosys commands that apply :data:`NO_RW_CHECK` to the marked memories' read ports (each
#: marked memory has one write port and one read port, so the collision mask is one bit, or two
#: read ports, the weight memory's columns with two events per command: two bits; a one-bit
#: mask on such a memory stops Yosys 0.69 on an assertion in the ECP5 build, so each command
#: selects its memories by their read ports); ``memory_collect`` skips a module that still has
#: processes, hence ``proc`` first.
YOSYS_COMMANDS = ("proc", "memory_collect a:no_rw_check",
                  "setparam -set RD_COLLISION_X_MASK 1'1 t:$mem_v2 a:no_rw_check %i "
                  "r:RD_PORTS=1 %i",
                  "setparam -set RD_COLLISION_X_MASK 2'b11 t:$mem_v2 a:no_rw_check %i "
                  "r:RD_PORTS=2 %i")


def _mark(mem):
    if not isinstance(mem, memory.Memory):
        raise TypeError(f"Expected a memory.Memory, not {mem!r}")
    mem.attrs[NO_RW_CHECK] = 1
    return mem


def loader_filled(mem):
    """Mark ``mem`` (a :class:`~amaranth.lib.memory.Memory`) as written only while idle.

    The caller gives it one write port and one non-transparent read port, and uses the read
    data only while the engine is busy. Returns ``mem``.
    """
    return _mark(mem)


def disjoint_maps(mem):
    """Mark ``mem`` as holding maps that no operation reads and writes at once.

    The caller gives it one write port and one non-transparent read port, enabled only when
    its data is used, and never enables it on the row written in the same cycle (a testbench
    checks it). Returns ``mem``.
    """
    return _mark(mem)


def rows_apart(mem):
    """Mark ``mem`` as read and written in place, but never at one row in the same cycle.

    The caller gives it one write port and one non-transparent read port, enabled only when
    its data is used, and a schedule in which a row is read in an earlier cycle than it is
    written (a testbench checks every cycle). Returns ``mem``.
    """
    return _mark(mem)


def ring_window(mem):
    """Mark ``mem`` as a ring whose used reads never meet its write at one row.

    The caller gives it one write port and one or two non-transparent read ports, and writes
    only rows that no read whose data is used can ask for in that cycle (the tile prefetch's
    window: the write fills the row after the last fetched one, the reads ask for fetched
    rows, and the window's room check keeps them apart); a read port may be enabled while its
    data is unused, also on the row written (a testbench checks every used read). Returns
    ``mem``.
    """
    return _mark(mem)


def registered_write(m, port, name):
    """A write interface whose address, data and enables reach ``port`` a cycle later, from
    registers (a block RAM's write pins then end no long path; the spike and stream memories
    above)."""
    w = wiring.Signature({"addr": Out(len(port.addr)), "en": Out(len(port.en)),
                          "data": Out(Value.cast(port.data).shape().width)}).create(path=(name,))
    m.d.sync += [port.addr.eq(w.addr), port.data.eq(w.data), port.en.eq(w.en)]
    return w


def registered_read(m, port, name):
    """A read interface whose address and enable reach ``port`` a cycle later, from registers,
    and whose data is ``port``'s a cycle later, from a register: three cycles from address to
    data, and no long path ends or starts at the block RAMs (the stream memory with
    ``AccelConfig.stream_latency = 3``). The data holds while no read is enabled, as the
    port's does."""
    shape = port.signature.members["data"].shape
    r = wiring.Signature({"addr": Out(len(port.addr)), "en": Out(1),
                          "data": In(shape)}).create(path=(name,))
    m.d.sync += [port.addr.eq(r.addr), port.en.eq(r.en), r.data.eq(port.data)]
    return r


def shared_memories(m, cfg):
    """The memories that several of the engine's stages share, added to ``m`` as ``spk``
    (spike maps), ``xs`` (the residual stream), ``pix`` (pixels and zero points) and ``shm``
    (alignment shifts), each marked as above, and their ports.

    Returns a :class:`~types.SimpleNamespace`: ``spk_r``, ``spk_w`` (a
    :func:`registered_write` interface, ``cfg.lanes``-bit write granularity) and ``spk_port``
    (the memory's own write port, for testbenches that check collisions), ``xs_r``, ``xs_w``
    and ``xs_port`` alike, and ``pix_r``, ``pix_w``, ``shm_r``, ``shm_w``.
    """
    m.submodules.spk = spk = disjoint_maps(memory.Memory(shape=cfg.row_bits("spikes"),
                                                         depth=cfg.spikes_depth, init=[]))
    # Read and written in place, a row never in the same cycle.
    m.submodules.xs = xs = rows_apart(memory.Memory(shape=cfg.lane_layout("stream"),
                                                    depth=cfg.stream_depth, init=[]))
    # The loader fills these (the pixel memory's zero points); the engine reads them only
    # while busy, and an image is received before the pixel layer reads it.
    m.submodules.pix = pix = loader_filled(memory.Memory(shape=cfg.row_bits("pixels"),
                                                         depth=cfg.pixels_depth, init=[]))
    m.submodules.shm = shm = loader_filled(memory.Memory(shape=cfg.lane_layout("shifts"),
                                                         depth=cfg.shifts_depth, init=[]))
    spk_port, spk_r = spk.write_port(granularity=cfg.lanes), spk.read_port()
    # Spike writes reach the memory a cycle after the stage issues them: the write's address,
    # data and enables leave registers (they came through the map address adder and the
    # stages' multiplexers), and the memory needs no collision logic.
    spk_w = registered_write(m, spk_port, "spk_w")
    # The stream memory's too: its write data is the sum of its own read data and a row's
    # values (ADD), a path from one block RAM's output through adders into its input.
    xs_port, xs_r = xs.write_port(), xs.read_port()
    xs_w = registered_write(m, xs_port, "xs_w")
    pix_w, pix_r = pix.write_port(), pix.read_port()
    shm_w, shm_r = shm.write_port(), shm.read_port()
    return SimpleNamespace(spk_r=spk_r, spk_w=spk_w, spk_port=spk_port, xs_r=xs_r, xs_w=xs_w,
                           xs_port=xs_port, pix_r=pix_r, pix_w=pix_w, shm_r=shm_r, shm_w=shm_w)
