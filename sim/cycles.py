"""Cycle model of the accelerator (``hdl/accelerator.py``) and work / dense bounds.

:func:`predict` counts the controller's cycles per image from the integer model and the spike
maps the golden model records (``golden.run(..., spikes=True)``); it follows the controller's
states one by one (``docs/accelerator.md`` §6), so it imports ``hdl/`` only for the size of a
descriptor (its fetch costs a cycle per program word). The data-dependent part is the event
gather: a spike word costs ``max(popcount, 1)`` cycles in the event encoder. :func:`work_bound`
and :func:`dense_bound` are the reference points for benchmarks.
"""

from dataclasses import dataclass

import numpy as np

from sdtforge.quantize import ir
from sdtforge.registry import Registry

from . import ops

__all__ = ["predict", "predict_groups", "work_bound", "dense_bound", "decode_cycles", "CYCLES",
           "GROUP_CYCLES"]


def decode_cycles(descriptor_words):
    """Cycles before a descriptor's work starts: ``FETCH`` (one per program word, plus the read
    latency) and ``DECODE``.

    ``descriptor_words`` is the program words per descriptor of the configuration
    (:func:`sdtforge.hdl.accel_isa.descriptor_words`).
    """
    return descriptor_words + 1 + 1

_LOOP = 2           # POS, NEXT per (group, position, step)
_GATHER = 4         # the pixel layer's first plane: GATHER_CMD, 3 fetch/queue/encoder latency
_PLANE = 4          # each later plane: the plane before's DRAIN, its CLEAR/BIAS (GATHER_NEXT),
                    # two cycles until the refilled fetch's first event
_GATHER_END = 3     # the last plane's DRAIN, its queue cycle, GATHER_WAIT (the Horner step)
_OUT = 1            # OUT_LIF (then OUT_SPIKE until the write-back's spikes are written, one
                    # cycle after its row's last chunk: PIXEL and HEAD_SUM write spikes)


def _ceil(a, b):
    return -(-int(a) // int(b))


def _popcounts(s, width, events=1):
    """``[T, words, H, W]`` encoder items per word of ``s`` (``[T, C, H, W]`` spikes of one
    image): its spikes, ``events`` to an item (``AccelConfig.events``), rounded up."""
    t, c, h, w = s.shape
    words = _ceil(c, width)
    pad = np.zeros((t, words * width, h, w), np.int64)
    pad[:, :c] = s
    pop = pad.reshape(t, words, width, h, w).sum(axis=2)
    return -(-pop // events)


def _word_cost(s, width, events=1):
    """``[T, H, W]`` cycles the encoder spends on one position's words: Σ max(items, 1) (an
    item is ``events`` spikes of a word, or fewer at its end).

    ``s``: ``[T, C, H, W]`` spikes of one image.
    """
    return np.maximum(_popcounts(s, width, events), 1).sum(axis=1)


def _box(cost, k3):
    """Σ of ``cost [T, H, W]`` over each position's in-bounds 3×3 (or 1×1) neighbourhood."""
    if not k3:
        return cost
    t, h, w = cost.shape
    p = np.zeros((t, h + 2, w + 2), np.int64)
    p[:, 1:-1, 1:-1] = cost
    return sum(p[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3))


def _third_event(s, width, k3, per_command=1, nth=3):
    """``[T, H, W]``: the encoder cycle (within its row) of each row's third event (``nth``),
    ``-1`` for a row with fewer.

    A row's encoder cycles run over its in-bounds taps (raster order) and, per tap, its words:
    a word with ``n`` spikes is ``n`` event cycles, an empty word one cycle without an event —
    but the row's last word always ends in an event (its sums' marker). While the PE array
    holds a row's sums, the encoder runs on into the next row until the command queue holds
    two events and a third waits; the cycles it got through by then are this index. A PE
    array that takes its weight rows into a register (``AccelConfig.weight_latency = 2``)
    holds one more command of the next row meanwhile, so there a fourth waits (``nth = 4``).
    With two events per command (``per_command``) an "event" here is a command: an encoder
    item.
    """
    pop = _popcounts(s, width, per_command)                                     # [T, words, H, W]
    t, words, h, w = pop.shape
    taps = [(dy, dx) for dy in range(3) for dx in range(3)] if k3 else [(1, 1)]
    cost, events = [], []
    for dy, dx in taps:
        shifted = np.full((t, words, h + 2, w + 2), -1, np.int64)
        shifted[:, :, 1:-1, 1:-1] = pop
        tap = shifted[:, :, dy:dy + h, dx:dx + w]                   # -1: out of bounds
        for k in range(words):
            cost.append(np.where(tap[:, k] < 0, 0, np.maximum(tap[:, k], 1)))
            events.append(np.maximum(tap[:, k], 0))
    cost, events = np.stack(cost), np.stack(events)                 # [E, T, H, W]
    # The row's last in-bounds word ends in an event (a marker when it is empty).
    inside = cost > 0
    last = inside.shape[0] - 1 - np.argmax(inside[::-1], axis=0)
    np.put_along_axis(events, last[None], np.take_along_axis(cost, last[None], 0), 0)
    cum_e, cum_c = np.cumsum(events, axis=0), np.cumsum(cost, axis=0)
    has = cum_e[-1] >= nth
    e = np.argmax(cum_e >= nth, axis=0)[None]                      # the entry of event nth
    before_e = np.take_along_axis(cum_e, e, 0)[0] - np.take_along_axis(events, e, 0)[0]
    before_c = np.take_along_axis(cum_c, e, 0)[0] - np.take_along_axis(cost, e, 0)[0]
    return np.where(has, before_c + nth - 1 - before_e, -1)


def _window_ranges(n, stride=2):
    """In-bounds rows of each pooled output's 3×3 / ``stride`` / pad-1 window over ``n``
    rows."""
    return [[stride * o + d - 1 for d in range(3) if 0 <= stride * o + d - 1 < n]
            for o in range((n - 1) // stride + 1)]


def _conv_cycles(s, groups, k3, width, pool=False, writeback=1, events=1, stream_latency=1,
                 weight_latency=1):
    """Cycles of a spike-input CONV over map ``s`` ``[T, C, H, W]`` (one image).

    The row pipeline (``docs/accelerator.md`` §9): ``CONV_START`` and three cycles of fetch,
    word queue and encoder, then the rows (group, position, step) back to back, each its
    encoder items (the fetch runs ahead, so one row's items follow the previous row's without a
    gap), but at least 3: a row's last event waits until the output stage has taken the
    previous row's sums, which the PE array emits two cycles after that row's last event (one
    in the command queue, one in the array). The very first row has no such wait; the layer
    ends three cycles after its last event (the write-back stage takes the last sums into its
    register and works on them a cycle later, ``CONV_END``). A pooled conv
    (``pool``) iterates the input positions, and a take also waits for the previous row's
    window merges; a write-back of ``writeback`` cycles per row (:func:`_rows`) overlaps
    the next row's gather. A PE array that takes its weight rows into a register
    (``weight_latency = 2``) emits a row's sums a cycle later and the layer ends four cycles
    after its last event; where every row is taken as its sums come (not pooled, one
    write-back cycle) the next row's last event still follows three cycles after the row's,
    elsewhere four (the take a cycle later).
    """
    return sum(_conv_groups(s, groups, k3, width, pool, writeback, events, stream_latency,
                            weight_latency))


def _window_counts(n):
    """Pooled windows (3×3/s2/p1) holding each of ``n`` input rows: 2 for an odd row inside."""
    return [2 if y % 2 and y + 1 < n else 1 for y in range(n)]


def _conv_groups(s, groups, k3, width, pool=False, writeback=1, events=1, stream_latency=1,
                 weight_latency=1):
    """:func:`_conv_cycles` split by output group: a list of ``groups`` cycle counts that sums
    to it.

    With the row recurrence (``pool`` or ``writeback > 1``) group ``g``'s cycles run from the
    end of group ``g - 1``'s last row (the layer's start for ``g = 0``) to the end of its own,
    so the pipeline's fill is group 0's and the last row's drain the last group's; in the
    closed form every group is its rows and the layer's fixed cycles (``CONV_START``, fill and
    drain) are group 0's.
    """
    rows = _box(_word_cost(s, width, events), k3)
    late = weight_latency - 1           # the PE array's extra stage
    if pool or writeback > 1:
        marks = []
        _rows(rows, _third_event(s, width, k3, events, 3 + late), groups, writeback, pool, marks,
              stream_latency, weight_latency)
        return [b - a for a, b in zip([0] + marks[:-1], marks, strict=True)]
    # Every row is taken as its sums come (no merges, all lanes at once), so the next row's
    # last event goes as the row enters the PE array's last stage: a row is still at least 3.
    first = int(rows[0, 0, 0])
    per = int(np.maximum(rows, 3).sum())
    return [7 + late + first - max(first, 3) + per] + [per] * (groups - 1)


def _rows(rows, third, groups, writeback, pool, marks=None, stream_latency=1, weight_latency=1):
    """A conv's rows one by one (``rows``: each row's gather, ``[T, H, W]``, per group;
    ``third``: :func:`_third_event`).

    ``last`` is the cycle a row's last event enters the command queue, ``take`` the cycle the
    output stage takes its sums into its register (two cycles later at the earliest) and
    ``start`` the cycle it works on the row's first chunk (a cycle later at the earliest, and
    ``writeback`` cycles after the previous row's). With ``writeback > 1`` the sums register
    shifts the row's chunks out, so a take is also no earlier than the previous row's last
    chunk (``start + writeback − 1``). The PE array holds a row's sums (and takes
    no command) until they are taken; the encoder runs on into the next row meanwhile, until
    the command queue holds two events and a third waits (:func:`_third_event`), and the rest
    of the row follows the take. The next row's last event also waits until the row is taken
    (``writeback = 1``) or started. A pooled row's take waits for the previous row's window
    merges (two cycles per window, after its last chunk; with a stream read of
    ``stream_latency = L > 1`` cycles, pipelined: a window per cycle and ``L`` more, and the
    layer, or group, then ends when its last row's merges do). The layer ends a cycle after the last
    row's last chunk. ``marks``, a list, gets the cycle each group's last row ends
    (``start + writeback`` after it; the last one is the result). With ``weight_latency = 2``
    a take is three cycles after the last event (the PE array's extra stage) and ``third`` is
    each row's fourth event.
    """
    t_steps, h, w = rows.shape
    wins = np.outer(_window_counts(h), _window_counts(w)) if pool else None
    last = take = start = free = None
    for _ in range(groups):
        for y in range(h):
            for x in range(w):
                for t in range(t_steps):
                    g, v3 = int(rows[t, y, x]), int(third[t, y, x])
                    if last is None:
                        last = 3 + g
                    else:
                        last = max(last + g, (take if writeback == 1 else start) + 1,
                                   take + g - v3 if v3 >= 0 else 0)
                    drained = last + 1 + weight_latency
                    take = drained if free is None else max(drained, free)
                    if writeback > 1 and start is not None:
                        # The sums register is the row's chunk shift register: free in the
                        # previous row's last chunk.
                        take = max(take, start + writeback - 1)
                    start = take + 1 if start is None else max(take + 1, start + writeback)
                    if pool:
                        n = int(wins[y, x])
                        free = start + writeback + (2 * n if stream_latency == 1
                                                    else n + stream_latency)
        # With a stream read of several cycles a pooled layer ends with its last merge.
        end = free if pool and stream_latency > 1 else start + writeback
        if marks is not None:
            marks.append(end)
    return end


@dataclass
class _Context:
    """What a cycle-model handler reads besides its layer."""

    model: object
    spikes: dict
    lanes: int
    width: int
    image: int
    pooled: frozenset
    #: :func:`decode_cycles` of the configuration: the fixed cost of every descriptor.
    decode: int
    #: The write-back stage's cycles per row (``AccelConfig.writeback_cycles``).
    writeback: int = 1
    #: The SDSA unit's mode (``AccelConfig.sdsa_or``): 1, a ``MASK`` command per cycle.
    sdsa_or: int = 0
    #: Events per PE command (``AccelConfig.events``).
    events: int = 1
    #: Cycles from a stream read's address to its data (``AccelConfig.stream_latency``).
    stream_latency: int = 1
    #: Cycles from a PE command to its weight row in the adders (``AccelConfig.weight_latency``).
    weight_latency: int = 1

    @property
    def steps(self):
        return int(self.model.config["T"])

    def smap(self, name):
        """The ``[T, C, H, W]`` spike map layer input ``name`` of the image (pooled if it is)."""
        a = np.asarray(self.spikes[name])[:, self.image]
        a = a if a.ndim == 4 else a.reshape(self.steps, -1, 1, 1)
        return ops.spike_maxpool(a) if name in self.pooled else a


def _pooled_outputs(model):
    """Spike maps read after an OR pool: the recordings are taken at the LIF, before a stage's
    pool, and the next layer reads the pooled map."""
    return frozenset(lay.output for lay in model.layers
                     if lay.KIND in ("conv3x3_pixel", "conv3x3_events", "conv3x3_spike")
                     and lay.pool)


#: The cycle-model pass: one handler per layer kind, ``handler(layer, ctx)`` → ``{name:
#: cycles}`` for the descriptors the compiler emits for the layer (``docs/extending.md``).
CYCLES = Registry("cycle model")


def _or_pool(channels, height, width, ctx, stride=2):
    """Cycles of a ``POOL_OR`` descriptor over a ``channels × height × width`` map: per word
    and step, two per in-bounds window position and three per output position."""
    words = _ceil(channels, ctx.width)
    ys, xs = _window_ranges(height, stride), _window_ranges(width, stride)
    wins = sum(len(y) for y in ys) * sum(len(x) for x in xs)
    return ctx.decode + words * ctx.steps * (2 * wins + 3 * len(ys) * len(xs))


def _pool_cycles(layer, ctx):
    """The ``POOL_OR`` descriptor after a pooled spiking conv (``{}`` when not pooled)."""
    if not layer.pool:
        return {}
    return {layer.name + ".pool": _or_pool(layer.out_channels, layer.height, layer.width, ctx)}


@CYCLES.register("conv3x3_pixel", "conv3x3_events")
def _pixel_conv(layer, ctx):
    g = _ceil(layer.out_channels, ctx.lanes)
    hw = layer.height * layer.width
    # Per position: the bit-planes' gathers, the last plane's sums taken (GATHER_WAIT); an
    # image's eight planes at the first step only, event frames' at every step from the
    # sample's top plane down (the golden model records the frames under the layer's input).
    planes, gathers = 8, 1
    if layer.KIND == "conv3x3_events":
        largest = int(np.asarray(ctx.spikes[layer.input])[:, ctx.image].max())
        planes, gathers = max(largest.bit_length(), 1), ctx.steps
    events = 9 * layer.in_channels     # a word per tap and channel, in every plane
    # (the last plane's sums a cycle later from a PE array with a weight register)
    gather = (_GATHER + events + (planes - 1) * (_PLANE + events) + _GATHER_END
              + ctx.weight_latency - 1)
    if ctx.writeback > 1:
        # A lane-serial write-back folds each plane in c cycles while the next one gathers
        # (_PLANE + events >= c: ``AccelConfig`` refuses a longer write-back row), then the
        # last one; its value goes to the LIF as a row of its own after that.
        gather += ctx.writeback
    cyc = ctx.decode + g * hw * (gathers * gather + ctx.steps * (_LOOP + _OUT + ctx.writeback))
    return {layer.name: cyc, **_pool_cycles(layer, ctx)}


@CYCLES.register("conv3x3_spike", "stream_conv3x3", "conv1x1", "stream_conv1x1")
def _spike_conv(layer, ctx):
    # The sum of its groups' segments (_spike_groups: one rule for both), per descriptor.
    out = {}
    for name, _, cycles in _spike_groups(layer, ctx):
        out[name] = out.get(name, 0) + cycles
    return out


@CYCLES.register("stream_lif")
def _stream_lif(layer, ctx):
    # LIF_READ (a cycle per cycle of the stream's read latency), then a row (group, token,
    # step) per write-back row (LIF_RUN; the last row's later chunks in LIF_END).
    n = ctx.model.tokens
    rows = _ceil(layer.channels, ctx.lanes) * n * ctx.steps
    return {layer.name: ctx.decode + ctx.stream_latency + rows * ctx.writeback}


def _mask_cycles(words, ctx, overlap):
    """A step's ``MASK`` commands: the serial mask neuron's ``W`` cycles per word, the last
    ``overlap`` of them under the first ``Q`` window's; in the ``"or"`` mode one per word."""
    return words if ctx.sdsa_or else words * ctx.width - overlap


@CYCLES.register("sdsa")
def _sdsa(layer, ctx):
    # Per step: 3 cycles per (token, word) for K∧V and for Q, then the mask.
    words = _ceil(layer.channels, ctx.width)
    n = ctx.model.tokens
    return {layer.name: ctx.decode + ctx.steps * (6 * n * words + _mask_cycles(words, ctx, 1))}


def erode_positions(tokens, channels, heads, width):
    """Window positions the SDSA stage reads per time step in DVS mode (per output word, the
    in-bounds neighbouring tokens times the words it needs: its own, and the words before and
    after it within its head when a head spans several words), summed over the outputs."""
    words = _ceil(channels, width)
    head_words = max(channels // heads // width, 1)
    toks = sum(1 + (n > 0) + (n < tokens - 1) for n in range(tokens))
    return toks * sum(1 + (k % head_words > 0) + (k % head_words < head_words - 1)
                      for k in range(words))


@CYCLES.register("sdsa_dvs")
def _sdsa_dvs(layer, ctx):
    # K and V eroded by stride-1 POOL_OR; then per step, per output word, three cycles per
    # window position and one for the word's command (K∧V) or write (Q); the mask as SDSA's.
    (th, tw), c = ir.expected_geometry(ctx.model.config)["token_hw"], layer.channels
    words = _ceil(c, ctx.width)
    pos = erode_positions(th * tw, c, layer.heads, ctx.width)
    erode = _or_pool(c, th, tw, ctx, stride=1)
    return {f"{layer.name}.erode_k": erode, f"{layer.name}.erode_v": erode,
            layer.name: ctx.decode + ctx.steps * (6 * pos + 4 * th * tw * words
                                                  + _mask_cycles(words, ctx, 2))}


def _head_parts(layer, ctx):
    """The head's ``HEAD_SUM`` descriptor's cycles and its linear layer's (a ``CONV`` over the
    token sums) per output group, both without their ``END``."""
    g = _ceil(layer.channels, ctx.lanes)
    t_steps, n = ctx.steps, ctx.model.tokens
    if ctx.writeback == 1:
        # X_READ, X_USE per token; with a stream read of L > 1 cycles a token read per
        # cycle, the last one's row added L cycles after its read.
        reads = 2 * n if ctx.stream_latency == 1 else n + ctx.stream_latency
        head_sum = ctx.decode + g * t_steps * (_LOOP + reads + _OUT + ctx.writeback)
    else:
        # A lane-serial write-back sums the tokens itself, a token per write-back row: the
        # first offered after X_READ and X_USE, each later one c cycles after the one before,
        # then the sum to the LIF as a row of its own (OUT_LIF), its spikes written c cycles
        # after it is taken (OUT_SPIKE).
        head_sum = ctx.decode + g * t_steps * (_LOOP + 2 + (n + 1) * ctx.writeback)
    head = np.asarray(ctx.spikes[layer.output])[:, ctx.image]
    linear = _conv_groups(head.reshape(t_steps, -1, 1, 1), _ceil(layer.num_classes, ctx.lanes),
                          False, ctx.width, writeback=ctx.writeback, events=ctx.events,
                          stream_latency=ctx.stream_latency, weight_latency=ctx.weight_latency)
    return head_sum, linear


@CYCLES.register("head")
def _head(layer, ctx):
    head_sum, linear = _head_parts(layer, ctx)
    return {layer.name: head_sum + ctx.decode + sum(linear) + ctx.decode}    # …, END


def _context(model, spikes, lanes, width, image, config):
    """The :class:`_Context` of :func:`predict`'s arguments (``config``: see there)."""
    pooled = _pooled_outputs(model)
    if config is None:
        from sdtforge.hdl.compile import descriptor_words_for, sdsa_or_mode

        words, writeback, sdsa_or = descriptor_words_for(model, lanes, width), 1, \
            sdsa_or_mode(model)
        events, latency, weights = 1, 1, 1
    else:
        from sdtforge.hdl.accel_isa import descriptor_words

        if (config.lanes, config.width) != (lanes, width):
            raise ValueError(f"config is at P = {config.lanes}, W = {config.width}, "
                             f"not {lanes}, {width}")
        words, writeback, sdsa_or = (descriptor_words(config), config.writeback_cycles,
                                     config.sdsa_or)
        events, latency, weights = config.events, config.stream_latency, config.weight_latency
    return _Context(model, spikes, lanes, width, image, pooled, decode_cycles(words), writeback,
                    sdsa_or, events, latency, weights)


def predict(model, spikes, lanes, width, image=0, *, config=None):
    """Predicted controller cycles for one image (what the result stream reports).

    Parameters
    ----------
    model : IntegerModel
        The integer model.
    spikes : dict
        ``GoldenResult.spikes`` (recording names → ``[T, B, …]`` 0/1 arrays; an event
        model's input counts too, ``"pixels"``: the first layer's gathers depend on them).
    lanes, width : int
        The accelerator's ``P`` and ``W``.
    image : int
        Batch index of the image.
    config : AccelConfig, optional
        The built configuration, at ``lanes`` and ``width``: its descriptor's program words
        (a fetch costs a cycle per word; :func:`sdtforge.hdl.accel_isa.descriptor_words`) and
        its write-back cycles per row (``writeback_cycles``). By default the configuration the
        compiler derives for ``model`` (:func:`sdtforge.hdl.compile.descriptor_words_for`,
        cached per model shape) with one write-back cycle; give it for a board's configuration
        (memories rounded up to whole blocks can add a word), ``--config`` or a lane-serial
        write-back.

    Returns
    -------
    dict
        ``total`` and per-layer cycles (a pooled layer's ``POOL_OR`` as ``NAME.pool``).

    Raises
    ------
    ValueError
        ``config`` is not at ``lanes`` and ``width``.
    """
    ctx = _context(model, spikes, lanes, width, image, config)
    out = {}
    for layer in model.layers:
        out.update(CYCLES[layer.KIND](layer, ctx))
    return {"total": sum(out.values()), "layers": out}


#: The per-group pass: a handler per layer kind with weight rows, ``handler(layer, ctx)`` →
#: ``[(descriptor name, group or None, cycles)]`` in program order, summing to the kind's
#: :data:`CYCLES` handler; a kind without one is a single weightless segment per descriptor.
GROUP_CYCLES = Registry("cycle model by group")


def _weighted(name, decode, groups):
    """Segments of a weighted descriptor: ``decode`` cycles joined to group 0's."""
    return [(name, g, c + (decode if g == 0 else 0)) for g, c in enumerate(groups)]


def _pool_segment(layer, ctx):
    return [(name, None, c) for name, c in _pool_cycles(layer, ctx).items()]


@GROUP_CYCLES.register("conv3x3_pixel", "conv3x3_events")
def _pixel_groups(layer, ctx):
    g = _ceil(layer.out_channels, ctx.lanes)
    per = (_pixel_conv(layer, ctx)[layer.name] - ctx.decode) // g
    return _weighted(layer.name, ctx.decode, [per] * g) + _pool_segment(layer, ctx)


@GROUP_CYCLES.register("conv3x3_spike", "stream_conv3x3", "conv1x1", "stream_conv1x1")
def _spike_groups(layer, ctx):
    k3 = layer.KIND in ("conv3x3_spike", "stream_conv3x3")
    pool = layer.KIND.startswith("stream_") and bool(getattr(layer, "pool", False))
    groups = _conv_groups(ctx.smap(layer.input), _ceil(layer.out_channels, ctx.lanes), k3,
                          ctx.width, pool, ctx.writeback, ctx.events, ctx.stream_latency,
                          ctx.weight_latency)
    out = _weighted(layer.name, ctx.decode, groups)
    if layer.KIND == "conv3x3_spike":
        out += _pool_segment(layer, ctx)
    return out


@GROUP_CYCLES.register("head")
def _head_groups(layer, ctx):
    # HEAD_SUM (no weight rows), the linear layer's CONV (weight rows), END.
    head_sum, linear = _head_parts(layer, ctx)
    return ([(layer.name + ".sum", None, head_sum)]
            + _weighted(layer.name + ".linear", ctx.decode, linear) + [("end", None, ctx.decode)])


def predict_groups(model, spikes, lanes, width, image=0, *, config=None):
    """:func:`predict`'s cycles split by descriptor and output group, in program order.

    A descriptor with weight rows (a CONV or PIXEL: one tile of weight rows per output group,
    :func:`sdtforge.hdl.weight_tiles.tile_plan`) is one segment per group: the cycles from the
    end of the previous group's last row to the end of its own, its descriptor's fetch and
    decode and the layer's pipeline fill in group 0. A descriptor without weight rows
    (``POOL_OR``, ``STREAM_LIF``, ``SDSA``, ``HEAD_SUM``, ``END``) is one segment. The segments
    sum to :func:`predict`'s ``total`` for the same arguments.

    Parameters
    ----------
    model, spikes, lanes, width, image, config
        As for :func:`predict`.

    Returns
    -------
    list of tuple
        ``(name, group, cycles)``: the descriptor's name (the compiler's,
        ``Compiled.names``), the output group (``None`` for a descriptor without weight rows)
        and its cycles.
    """
    ctx = _context(model, spikes, lanes, width, image, config)
    out = []
    for layer in model.layers:
        if layer.KIND in GROUP_CYCLES:
            out += GROUP_CYCLES[layer.KIND](layer, ctx)
        else:
            out += [(name, None, c) for name, c in CYCLES[layer.KIND](layer, ctx).items()]
    return out


def work_bound(counts, lanes):
    """``(synaptic accumulates + first-layer MACs + neuron updates) / P`` cycles per image.

    ``counts``: :meth:`GoldenResult.totals` (per-image sums).
    """
    return (counts["acs"] + counts["macs"] + counts["neuron_updates"]) / lanes


def dense_bound(model, lanes):
    """Cycles a dense engine with ``P`` MAC lanes needs per image (every synapse, every step)."""
    t_steps = int(model.config["T"])
    total = 0
    for layer in model.layers:
        if hasattr(layer, "weight"):
            w = np.asarray(layer.weight)
            fan = w.size
            if w.ndim == 4:     # a 3×3 conv at every input position (a pooled one too)
                fan *= layer.height * layer.width
            else:
                fan *= getattr(layer, "tokens", 1) if layer.KIND != "head" else 1
            total += fan * (1 if layer.KIND == "conv3x3_pixel" else t_steps)  # events: per step
    return total / lanes


def row_gathers(model, spikes, width, image=0):
    """The event-gather cycles of every row of the spike-input convolutions of one image.

    A row is one (output group, position, step); its gather is Σ over the input words of its
    neighbourhood of ``max(popcount, 1)`` — the same count :func:`predict` uses. Returns
    ``[(layer name, output channels, gathers)]`` with ``gathers`` an ``int64 [T, H, W]`` array
    that repeats for each of the layer's ``ceil(channels / P)`` output groups (the head's linear
    layer is ``[T, 1, 1]``). ``bench/writeback.py`` prices a lane-serial write-back with it.
    """
    ctx = _Context(model, spikes, 1, width, image, _pooled_outputs(model), 0)
    out = []
    for layer in model.layers:
        if layer.KIND in ("conv3x3_spike", "stream_conv3x3", "conv1x1", "stream_conv1x1"):
            k3 = layer.KIND in ("conv3x3_spike", "stream_conv3x3")
            out.append((layer.name, layer.out_channels,
                        _box(_word_cost(ctx.smap(layer.input), width), k3)))
        elif layer.KIND == "head":
            head = np.asarray(spikes[layer.output])[:, image]
            out.append((layer.name + ".linear", layer.num_classes,
                        _word_cost(head.reshape(ctx.steps, -1, 1, 1), width)))
    return out
