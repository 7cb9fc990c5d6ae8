"""``bench/ff_packing.py``: flip-flops by what drives their D input."""

import json

from _bench import load_bench


def _tool():
    return load_bench("ff_packing")


def _cell(kind, **ports):
    dirs = {p: ("output" if p in ("O", "Q") else "input") for p in ports}
    return {"type": kind, "port_directions": dirs, "connections": ports}


NETLIST = {"modules": {"top": {
    "attributes": {"top": 1},
    "cells": {
        # LUT 2 drives flip-flop a alone: packable.
        "l1": _cell("SB_LUT4", I0=[1], O=[2]),
        "fa": _cell("SB_DFF", D=[2], Q=[3]),
        # LUT 4 drives flip-flop b and LUT l3: fan-out.
        "l2": _cell("SB_LUT4", I0=[3], O=[4]),
        "fb": _cell("SB_DFF", D=[4], Q=[5]),
        "l3": _cell("SB_LUT4", I0=[4], O=[6]),
        # Flip-flop c copies flip-flop b; d takes a constant.
        "fc": _cell("SB_DFFE", D=[5], Q=[7]),
        "fd": _cell("SB_DFF", D=["0"], Q=[8]),
    },
    "netnames": {"a": {"bits": [3]}, "b": {"bits": [5]}, "c": {"bits": [7]},
                 "d": {"bits": [8]}, "x": {"bits": [1]}},
}}}


def test_classify_by_driver(tmp_path, capsys):
    tool = _tool()
    counts, registers = tool.classify(NETLIST)
    assert counts == {"lut-packable": 1, "lut-fanout": 1, "SB_DFF": 1, "const": 1}
    assert registers == {("b", "lut-fanout"): 1, ("c", "SB_DFF"): 1, ("d", "const"): 1}
    path = tmp_path / "n.json"
    path.write_text(json.dumps(NETLIST))
    assert tool.main([str(path), "--out", str(tmp_path / "o.json")]) == 0
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["flip_flops"] == 4 and out["by_driver"]["lut-packable"] == 1
    assert "4 flip-flops" in capsys.readouterr().out
    assert tool.main([str(tmp_path / "missing.json")]) == 2
