"""``bench/engine.py --update``: a round of one board keeps the other boards' entries of the
results file, and each board's entry names the commit it was measured on."""

import json

from _bench import load_bench


def _fake(bench, monkeypatch, fmax):
    """No models, builds or cycle model: every board measures ``fmax`` (target >= 36)."""
    monkeypatch.setattr(bench, "make_model",
                        lambda name, tmp: (f"{name}.sfm", {"name": name, "weights": "random"}))
    monkeypatch.setattr(bench, "measure_ratio", lambda path, info, lanes, width, bound: {
        "model": info, "lanes": lanes, "width": width,
        "cycles_over_work": bench._figure(1.0, ("<=", bound))})
    monkeypatch.setattr(bench, "build_all", lambda jobs, seeds, tmp, workers=1:
                        {board: [] for board in jobs})
    monkeypatch.setattr(bench, "measure_board", lambda board, path, info, seeds, runs: {
        "model": info, "seeds": list(seeds),
        "figures": {"fmax_mhz": bench._figure(fmax, (">=", 36.0))}})
    monkeypatch.setattr(bench, "_tools", lambda: {})


def test_update_keeps_the_boards_not_measured(tmp_path, monkeypatch, capsys):
    bench = load_bench("engine")
    out = tmp_path / "engine.json"
    _fake(bench, monkeypatch, 40.0)
    assert bench.main(["--out", str(out), "--seeds", "1"]) == 0
    both = json.loads(out.read_text())
    assert sorted(both["boards"]) == ["icebreaker", "ulx3s-85f"]
    assert both["summary"] == {"targets": 4, "met": 4, "all_met": True}

    _fake(bench, monkeypatch, 20.0)
    assert bench.main(["--out", str(out), "--seeds", "1", "--boards", "icebreaker",
                       "--update"]) == 0
    updated = json.loads(out.read_text())
    assert updated["boards"]["ulx3s-85f"] == both["boards"]["ulx3s-85f"]
    assert updated["boards"]["icebreaker"]["figures"]["fmax_mhz"]["value"] == 20.0
    assert updated["summary"] == {"targets": 4, "met": 3, "all_met": False}
    commit = updated["boards"]["icebreaker"]["commit"]
    assert commit != "unknown" and len(commit.split("+")[0]) == 7

    # Without --update the file holds only the boards of the round.
    assert bench.main(["--out", str(out), "--seeds", "1", "--boards", "icebreaker"]) == 0
    assert sorted(json.loads(out.read_text())["boards"]) == ["icebreaker"]
    capsys.readouterr()
