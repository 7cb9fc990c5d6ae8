"""Training on several processes (DistributedDataParallel over Gloo, on CPUs) and resuming.

Batch-norm layers normalize with their batch's statistics while training, so a batch split over
two processes is not the same computation as the whole batch unless the statistics are
synchronised; torch's ``SyncBatchNorm`` runs on GPUs only, so these tests freeze the statistics
(``_fit(freeze_bn=True)``: batch-norm in eval mode) and compare everything else.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sdtforge.cli import main
from sdtforge.model import SpikeDrivenTransformer, load_checkpoint, load_dataset, training
from sdtforge.model.presets import get_preset

CONFIG = get_preset("digits-tiny").config


def _data(n):
    x, y = load_dataset("digits", "train")
    return x[:n], y[:n]


def _settings(**kw):
    args = dict(epochs=1, batch_size=16, lr=2e-3, weight_decay=0.01, label_smoothing=0.1)
    args.update(kw)
    return training.TrainSettings(**args)


def _worker(rank, world, init, n, settings, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = training._fit(SpikeDrivenTransformer(CONFIG), *_data(n), settings, seed=0,
                              freeze_bn=True)
        if rank == 0:
            torch.save(model.state_dict(), out)
    finally:
        dist.destroy_process_group()


def _run(tmp_path, world, n, settings):
    out = tmp_path / f"w{world}-{n}.pt"
    init = tmp_path / f"init-{world}-{n}"
    mp.spawn(_worker, args=(world, str(init), n, settings, str(out)), nprocs=world, join=True)
    return torch.load(out, weights_only=True)


@pytest.mark.parametrize("n, epochs", [(16, 1), (48, 2)])
def test_two_processes_at_half_the_batch_equal_one_process(tmp_path, n, epochs):
    """One optimizer step (16 samples), then six (48 samples, 2 epochs): two processes with
    batch 8 each take the same steps as one process with batch 16 over the same samples (the
    sampler deals sample ``2j + r`` of the epoch's permutation to rank ``r``)."""
    one = _run(tmp_path, 1, n, _settings(epochs=epochs, batch_size=16))
    two = _run(tmp_path, 2, n, _settings(epochs=epochs, batch_size=8, world_size=2))
    for key, value in one.items():
        assert torch.allclose(value, two[key], atol=1e-5, rtol=0), key
    torch.manual_seed(0)
    init = SpikeDrivenTransformer(CONFIG).state_dict()
    assert any(not torch.allclose(one[k], init[k]) for k in one if k.endswith("weight"))


class _Stop(Exception):
    pass


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resume_continues_to_the_same_weights(tmp_path, precision):
    """2 epochs, or 1 epoch, a crash, and a resumed 1: the same weights, bit for bit (with
    augmentation, clipping, accumulation and, in fp16, the gradient scaler, whose state must
    all come back)."""
    x, y = _data(64)
    settings = _settings(epochs=2, shift=1, clip_grad=1.0, accumulate=2, precision=precision)

    def fit(**kw):
        torch.manual_seed(0)
        return training._fit(SpikeDrivenTransformer(CONFIG), x, y, settings, seed=0,
                             preset="digits-tiny", **kw)

    whole = fit().state_dict()

    def crash_after_first(epoch):
        if epoch == 0:
            raise _Stop

    state_path = tmp_path / "train-state.pt"
    with pytest.raises(_Stop):
        fit(state_path=state_path, on_epoch_end=crash_after_first)
    state = training._read_state(state_path, settings, "digits-tiny", 0)
    assert state["epoch"] == 1
    assert (state["scaler"] is not None) == (precision == "fp16")
    resumed = fit(resume=state, state_path=state_path).state_dict()
    for key, value in whole.items():
        assert torch.equal(value, resumed[key]), key
    assert training._read_state(state_path, settings, "digits-tiny", 0)["epoch"] == 2


def test_resume_refuses_a_state_of_another_run(tmp_path, capsys):
    x, y = _data(16)
    state_path = tmp_path / "train-state.pt"
    training._fit(SpikeDrivenTransformer(CONFIG), x, y, _settings(epochs=1, shift=1), seed=0,
                  preset="digits-tiny", state_path=state_path)
    rc = main(["train", "--preset", "digits-tiny", "--epochs", "2", "--resume", str(state_path),
               "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "is of another run: epochs 1 (now 2), batch_size 16 (now 32)" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    (tmp_path / "junk.pt").write_bytes(b"no")
    assert main(["train", "--resume", str(tmp_path / "junk.pt"), "--out",
                 str(tmp_path / "run")]) == 2
    assert "cannot be read" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--sync-bn"], "--sync-bn needs CUDA"),
    (["--clip-grad", "0"], "must be positive"),
    (["--accumulate", "0"], "must be a positive integer"),
])
def test_train_options_the_cpu_cannot_honour_are_refused(tmp_path, capsys, argv, message):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run"), *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_mixed_precision_runs_the_forward_pass_in_its_dtype_and_trains(precision, dtype):
    """Autocast is in effect (the logits come out in the low precision, the weights end
    elsewhere than in fp32) and training stays finite. On the CPU here; on a GPU the same code
    runs with device type ``cuda``."""
    settings = _settings(precision=precision)
    autocast, scaler = training._autocast(settings, torch.device("cpu"))
    assert (scaler is not None) == (precision == "fp16")
    model = SpikeDrivenTransformer(CONFIG)
    with autocast:
        assert model(torch.as_tensor(_data(4)[0])).dtype == dtype
    x, y = _data(32)

    def fit(s):
        torch.manual_seed(0)
        return training._fit(SpikeDrivenTransformer(CONFIG), x, y, s, seed=0).state_dict()

    mixed, full = fit(settings), fit(_settings())
    assert all(torch.isfinite(v).all() for v in mixed.values() if v.is_floating_point())
    assert any(not torch.equal(mixed[k], full[k]) for k in full if k.endswith("weight"))


def test_the_checkpoint_records_the_world_and_the_effective_batch(tmp_path):
    out = tmp_path / "ckpt.pt"
    training.train("digits-tiny", out, epochs=1, batch_size=64, accumulate=2, progress=False)
    _, ckpt = load_checkpoint(out)
    s = ckpt["train_settings"]
    assert s["world_size"] == 1 and s["batch_size"] == 64 and s["accumulate"] == 2
    assert s["effective_batch_size"] == 128
    assert (tmp_path / "train-state.pt").is_file()


@pytest.mark.slow
def test_torchrun_two_processes_train_one_epoch(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun, "torchrun is installed with torch"
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m",
                           "sdtforge.cli", "train", "--preset", "digits-tiny", "--epochs", "1",
                           "--out", str(out), "--json"], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model, ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["train_settings"]["world_size"] == 2
    assert ckpt["train_settings"]["effective_batch_size"] == 64
    assert 0.0 <= ckpt["metrics"]["test_accuracy"] <= 1.0
    assert (out / "train-state.pt").is_file()
    assert all(np.isfinite(p.detach().numpy()).all() for p in model.parameters())


@pytest.mark.slow
def test_torchrun_processes_refusing_a_setting_exit_with_the_one_line_error(tmp_path):
    """Every process refuses ``--augment paper`` for a grey-level preset after joining the
    group: the run fails with each process's one-line error, no process aborts as it ends the
    group, and nothing is written."""
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m",
                           "sdtforge.cli", "train", "--preset", "digits-tiny", "--augment",
                           "paper", "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode != 0
    assert proc.stderr.count("--augment paper is the reference's recipe") == 2, proc.stderr[-2000:]
    assert "terminate called" not in proc.stderr
    assert not out.exists()


def test_accumulated_batches_equal_one_large_batch():
    """Batches of 4 accumulated 3 at a time take the steps of batches of 12 over the same
    samples (16 of them: a step of 12, then a last step of 4, which is not divided by 3)."""
    x, y = _data(16)

    def fit(**kw):
        torch.manual_seed(0)
        return training._fit(SpikeDrivenTransformer(CONFIG), x, y, _settings(epochs=2, **kw),
                             seed=0, freeze_bn=True).state_dict()

    big, small = fit(batch_size=12), fit(batch_size=4, accumulate=3)
    for key, value in big.items():
        assert torch.allclose(value, small[key], atol=1e-5, rtol=0), key


def test_a_state_written_before_a_setting_existed_resumes_with_its_default(tmp_path):
    x, y = _data(16)
    settings = _settings(epochs=1)
    state_path = tmp_path / "train-state.pt"
    training._fit(SpikeDrivenTransformer(CONFIG), x, y, settings, seed=0, preset="digits-tiny",
                  state_path=state_path)
    state = torch.load(state_path, weights_only=True)
    del state["settings"]["augment"]  # as a state of the release before --augment
    torch.save(state, state_path)
    assert training._read_state(state_path, settings, "digits-tiny", 0)["epoch"] == 1
    with pytest.raises(Exception, match=r"augment 'none' \(now 'paper'\)"):
        training._read_state(state_path, _settings(epochs=1, augment="paper"), "digits-tiny", 0)
