"""``bench/path_depth.py``: arrival estimates per endpoint of an ECP5 netlist."""

import json

import pytest
from _bench import load_bench


def _tool():
    return load_bench("path_depth")


def _cell(kind, **ports):
    outputs = ("Q", "Z", "COUT", "S0", "S1", "DO") + tuple(f"DOB{i}" for i in range(4))
    dirs = {p: ("output" if p in outputs else "input") for p in ports}
    return {"type": kind, "port_directions": dirs, "connections": ports}


NETLIST = {"modules": {"top": {
    "attributes": {"top": 1},
    "cells": {
        # Register r1 → two LUT levels → register r2.
        "r1": _cell("TRELLIS_FF", DI=[9], Q=[2]),
        "l1": _cell("LUT4", A=[2], B=["0"], Z=[3]),
        "l2": _cell("LUT4", A=[3], Z=[4]),
        "r2": _cell("TRELLIS_FF", DI=[4], Q=[5]),
        # A block RAM's output → one LUT and a wide mux (same slice) → register r3's enable.
        "ram": _cell("DP16KD", ADB0=[5], DOB0=[6]),
        "l3": _cell("LUT4", A=[6], Z=[7]),
        "mx": _cell("PFUMX", ALUT=[7], Z=[8]),
        "r3": _cell("TRELLIS_FF", DI=[2], CE=[8], Q=[9]),
    },
    "netnames": {
        "a": {"bits": [2]}, "$auto$x": {"bits": [3]}, "mid": {"bits": [4]},
        "b": {"bits": [5]}, "ram_do": {"bits": [6]}, "sel": {"bits": [7, 8]},
        "c": {"bits": [9]},
    },
}}}


def test_register_to_register_estimate():
    t = _tool()
    netlist = t.Netlist(NETLIST)
    ends = {(name, pin): ns for ns, name, pin, _ in netlist.endpoints()}
    two_luts = t.FF_CO + 3 * t.NET + 2 * t.LUT + t.SETUP
    assert ends[("b", "DI")] == pytest.approx(two_luts)
    # The mux takes the LUT's output inside the slice: no net between them.
    ram = t.BRAM_CO + 2 * t.NET + t.LUT + t.MUX + t.SETUP
    assert ends[("c", "CE")] == pytest.approx(ram)
    assert ends[("ram", "ADB0")] == pytest.approx(t.FF_CO + t.NET + t.SETUP)
    # Worst first; the path runs back to its source register with readable names.
    assert netlist.endpoints()[0][1:3] == ("c", "CE")
    ns, _, _, bit = next(e for e in netlist.endpoints() if e[1:3] == ("b", "DI"))
    assert [(name, kind) for _, name, kind in netlist.path(bit)] == [
        ("mid", "LUT4"), ("$auto$x", "LUT4"), ("a", "TRELLIS_FF")]


def test_groups_over_a_threshold(tmp_path, capsys):
    t = _tool()
    groups = t.rank(t.Netlist(NETLIST), over=3.0)
    assert [(g["group"], g["endpoints"], g["source"]) for g in groups] == [
        ("c.CE", 1, "ram_do"), ("b.DI", 1, "a")]
    path = tmp_path / "n.json"
    path.write_text(json.dumps(NETLIST))
    assert t.main([str(path), "--over", "3", "--json"]) == 0
    assert [g["group"] for g in json.loads(capsys.readouterr().out)] == ["c.CE", "b.DI"]


def test_unreadable_netlist_is_one_line(tmp_path, capsys):
    t = _tool()
    assert t.main([str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("path_depth: cannot read") and err.count("\n") == 1
