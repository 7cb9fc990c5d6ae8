"""``bench/engine.py --update``: a round of one board keeps the other boards' entries of the
results file, and each board's entry names the commit it was measured on."""

import json

from _bench import load_bench


def _fake(bench, monkeypatch, fmax):
    """No models, builds or cycle model: every board measures ``fmax`` (target >= 36)."""
    monkeypatch.setattr(bench, "make_model", lambda name, tmp, bits=8: (
        f"{name}-w{bits}.sfm", {"name": name, "weights": "random", "weight_bits": bits}))
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


def test_accuracy_loss_is_a_target_of_a_trained_model(monkeypatch):
    """A trained model's entry carries float − integer accuracy in points against the weight
    width's condition (at most 0.5); a random model's has no such figure."""
    bench = load_bench("engine")
    values = {"lanes": 8, "width": 16, "clock_mhz": 24.0, "cycles_per_image": 1.0,
              "latency_ms": 1.0, "images_per_s": 1.0}
    monkeypatch.setattr(bench, "_unbuilt", lambda path, board: dict(values))
    trained = {"name": "digits-tiny", "weights": "trained", "weight_bits": 4,
               "float_accuracy": 0.9694, "integer_accuracy": 0.9722}
    entry = bench.measure_board("icebreaker", "m.sfm", trained, [])
    assert entry["figures"]["accuracy_loss_pt"] == {"value": -0.28, "target": "<= 0.5",
                                                    "met": True}
    worse = dict(trained, integer_accuracy=0.9611)
    assert not bench.measure_board("icebreaker", "m.sfm", worse, [])["figures"][
        "accuracy_loss_pt"]["met"]
    random = {"name": "digits-tiny", "weights": "random", "weight_bits": 8}
    assert "accuracy_loss_pt" not in bench.measure_board("icebreaker", "m.sfm", random,
                                                         [])["figures"]


def test_builds_of_a_changed_checkout_are_named(tmp_path, monkeypatch, capsys):
    """A build started after the checkout changed measured other code: the board's entry names
    every commit its builds measured, and the run says so."""
    bench = load_bench("engine")
    out = tmp_path / "engine.json"
    _fake(bench, monkeypatch, 40.0)
    monkeypatch.setattr(bench, "_commit", lambda results=None: "aaaaaaa")
    monkeypatch.setattr(bench, "build_all", lambda jobs, seeds, tmp, workers=1: {
        board: [{"commit": "aaaaaaa"}, {"commit": "aaaaaaa+changes"}] for board in jobs})
    assert bench.main(["--out", str(out), "--seeds", "1", "2", "--boards", "icebreaker"]) == 0
    entry = json.loads(out.read_text())["boards"]["icebreaker"]
    assert entry["commit"] == "aaaaaaa, aaaaaaa+changes"
    assert "the checkout changed during the run" in capsys.readouterr().err

    monkeypatch.setattr(bench, "build_all", lambda jobs, seeds, tmp, workers=1: {
        board: [{"commit": "aaaaaaa"}] * 2 for board in jobs})
    assert bench.main(["--out", str(out), "--seeds", "1", "2", "--boards", "icebreaker"]) == 0
    assert json.loads(out.read_text())["boards"]["icebreaker"]["commit"] == "aaaaaaa"
    assert "changed" not in capsys.readouterr().err
