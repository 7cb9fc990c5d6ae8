"""Fuzzing the .sfm loader: whatever the bytes, only ``IRError`` escapes, quickly and in
bounded memory; a mutation the loader accepts still gives a model that validates.

Mutations of a small valid file: byte flips, truncation, appended and inserted bytes, header
JSON edits (numbers changed, huge sizes, wrong types, keys deleted), replaced or added
entries, and forged ZIP directory sizes over a zip-bomb entry. The default run is sized for a
few seconds per test; the ``slow`` variants run many more examples.
"""

import io
import json
import tracemalloc
import zipfile
from datetime import timedelta

import numpy as np
import pytest
from _zip import deflate as _deflate
from _zip import npy as _npy
from _zip import raw_zip as _raw_zip
from _zip import zip_entries as _zip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdtforge.quantize import ir, synthetic

FAST, SLOW = 60, 1000  # examples per test: default run / @pytest.mark.slow run
DEADLINE = timedelta(seconds=5)  # per example
MEMORY = 300 << 20  # tracemalloc peak per example

CONFIG = synthetic.tiny_config(img_size=[4, 4], embed_dims=8, T=2, num_classes=3)
BLOB = ir.dumps(synthetic.random_model(CONFIG, seed=11))


with zipfile.ZipFile(io.BytesIO(BLOB)) as _zf:
    ENTRIES = {n[:-4]: _zf.read(n) for n in _zf.namelist()}
HEADER = json.loads(np.load(io.BytesIO(ENTRIES["header"])).tobytes())


def _paths(obj, prefix=()):
    """Every path into the JSON ``obj`` (containers and leaves)."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


PATHS = [p for p in _paths(HEADER) if p]
def _get(obj, path):
    for key in path:
        obj = obj[key]
    return obj


NUMBER_PATHS = [p for p in PATHS if isinstance(_get(HEADER, p), (int, float))
                and not isinstance(_get(HEADER, p), bool)]
HUGE = [0, -1, 1, 2, 255, 256, 65535, 65536, 1 << 31, 1 << 32, 1 << 40, 1 << 63, 1 << 64,
        10 ** 30, 10 ** 400, -(1 << 63), 1e308, 1e-308, 0.5, -0.0]

_leaves = (st.none() | st.booleans() | st.integers() | st.sampled_from(HUGE)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON_VALUES = st.recursive(_leaves, lambda c: st.lists(c, max_size=4)
                           | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=10)


MEMBERS = {name: (name + ".npy", zipfile.ZIP_DEFLATED, *_deflate(raw), len(raw))
           for name, raw in ENTRIES.items()}
BOMB_ZEROS = 64 << 20  # behind each bomb entry's real bytes: 64 kB that inflate to 64 MiB
BOMBS = {name: _deflate(ENTRIES[name], BOMB_ZEROS)
         for name in ("header", "layers/001/weight", "stream/theta")}


def _check(data):
    """Load ``data``: only IRError may escape, within the memory bound; an accepted file
    re-serializes to a model that validates again."""
    tracemalloc.start()
    try:
        try:
            model = ir.loads(data)
        except ir.IRError as exc:
            assert str(exc).strip()
            model = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY, f"loader peak {peak >> 20} MiB"
    if model is not None:
        again = ir.loads(ir.dumps(model))
        assert ir.dumps(again) == ir.dumps(model)


# ---------------------------------------------------------------------------------------------
# Strategies: each draws the bytes of one mutated file


@st.composite
def byte_mutations(draw):
    raw = bytearray(BLOB)
    offsets = st.sampled_from(range(len(raw)))  # spread over the file, not near 0
    for _ in range(draw(st.integers(0, 8))):
        raw[draw(offsets)] ^= draw(st.integers(1, 255))
    op = draw(st.sampled_from(["none", "truncate", "append", "insert", "delete"]))
    if op == "truncate":
        raw = raw[:draw(offsets)]
    elif op == "append":
        raw += draw(st.binary(max_size=64)) * draw(st.sampled_from([1, 16, 4096]))
    elif op == "insert":
        i = draw(offsets)
        raw[i:i] = draw(st.binary(min_size=1, max_size=64))
    elif op == "delete":
        i = draw(offsets)
        del raw[i:i + draw(st.integers(1, 256))]
    return bytes(raw)


@st.composite
def header_edits(draw):
    header = json.loads(json.dumps(HEADER))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["number", "number", "set", "delete"]))
        path = draw(st.sampled_from(NUMBER_PATHS if op == "number" else PATHS))
        try:
            parent, key = _get(header, path[:-1]), path[-1]
            if op == "number":
                old = parent[key]
                if not isinstance(old, (int, float)) or isinstance(old, bool):
                    continue
                how = draw(st.sampled_from(["huge", "scale", "shift"]))
                if how == "huge":
                    parent[key] = draw(st.sampled_from(HUGE))
                elif how == "scale":
                    parent[key] = old * draw(st.sampled_from([-1, 0, 2, 3, 1000, 1 << 20]))
                else:
                    parent[key] = old + draw(st.integers(-3, 3))
            elif op == "set":
                parent[key] = draw(JSON_VALUES)
            elif isinstance(parent, dict):
                del parent[key]
            else:
                parent.pop(key)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or retyped the path
    text = json.dumps(header).encode()
    entries = dict(ENTRIES, header=_npy(np.frombuffer(text, np.uint8)))
    method = draw(st.sampled_from([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]))
    return _zip(entries, method)


_DTYPES = ["int8", "uint8", "int32", "int64", ">i8", "float64", "<f4", "bool", "V8", "U3"]


@st.composite
def entry_edits(draw):
    entries = dict(ENTRIES)
    for _ in range(draw(st.integers(1, 2))):
        name = draw(st.sampled_from(sorted(ENTRIES)))
        op = draw(st.sampled_from(["array", "append", "truncate", "flip", "drop", "extra"]))
        raw = entries.get(name) or ENTRIES[name]
        if op == "array":
            shape = draw(st.lists(st.integers(0, 70), max_size=4))
            fortran = draw(st.booleans())
            arr = np.zeros(shape, draw(st.sampled_from(_DTYPES)), order="F" if fortran else "C")
            entries[name] = _npy(arr)
        elif op == "append":
            entries[name] = raw + draw(st.binary(min_size=1, max_size=32))
        elif op == "truncate":
            entries[name] = raw[:draw(st.integers(0, len(raw) - 1))]
        elif op == "flip":  # inside the .npy magic and header dict
            i = draw(st.integers(0, min(len(raw), 128) - 1))
            entries[name] = raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1:]
        elif op == "drop":
            entries.pop(name, None)
        else:
            entries[draw(st.sampled_from(["extra", name + "x", "layers/999/weight"]))] = raw
    return _zip(entries)


@st.composite
def forged_sizes(draw):
    """The ZIP directory declares other sizes or CRCs; some entries are zip bombs."""
    members = dict(MEMBERS)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(ENTRIES)))
        fname, method, comp, crc, size = members[name]
        if name in BOMBS and draw(st.booleans()):
            comp, bomb_crc = BOMBS[name]
            crc = draw(st.sampled_from([crc, bomb_crc]))
            size = draw(st.sampled_from([size, size + BOMB_ZEROS]))
        size = draw(st.sampled_from([size, 0, size - 1, size + 1, 1 << 20, 1 << 31,
                                     (1 << 32) - 1]) | st.integers(0, (1 << 32) - 1))
        size %= 1 << 32  # the ZIP field is 32 bits
        if draw(st.booleans()):
            crc = draw(st.integers(0, (1 << 32) - 1))
        members[name] = (fname, method, comp, crc, size)
    return _raw_zip(list(members.values()))


# ---------------------------------------------------------------------------------------------
# Tests: a default-sized and a slow many-example run of each strategy


def _fuzz_test(strategy, examples):
    @settings(max_examples=examples, deadline=DEADLINE,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategy)
    def test(data):
        _check(data)
    return test


def test_the_unmutated_file_and_its_hand_built_zip_load():
    _check(BLOB)
    assert ir.dumps(ir.loads(_raw_zip(list(MEMBERS.values())))) == BLOB


test_fuzz_byte_mutations = _fuzz_test(byte_mutations(), FAST)
test_fuzz_header_edits = _fuzz_test(header_edits(), FAST)
test_fuzz_entry_edits = _fuzz_test(entry_edits(), FAST)
test_fuzz_forged_sizes = _fuzz_test(forged_sizes(), FAST)

test_fuzz_byte_mutations_many = pytest.mark.slow(_fuzz_test(byte_mutations(), SLOW))
test_fuzz_header_edits_many = pytest.mark.slow(_fuzz_test(header_edits(), SLOW))
test_fuzz_entry_edits_many = pytest.mark.slow(_fuzz_test(entry_edits(), SLOW))
test_fuzz_forged_sizes_many = pytest.mark.slow(_fuzz_test(forged_sizes(), SLOW))
