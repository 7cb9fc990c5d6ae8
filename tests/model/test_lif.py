"""LIF neuron: charge, fire on equality, hard reset, fresh state per call, surrogate gradient."""

import torch

from sdtforge.model.lif import MultiStepLIF, lif_multistep


def _naive_lif(x, v_th):
    v, out = 0.0, []
    for xt in x:
        h = v + (xt - v) / 2
        s = 1.0 if h >= v_th else 0.0
        v = 0.0 if s else h
        out.append(s)
    return out


def test_charge_fire_reset():
    # X = 1 each step: H = 0.5, 0.75, 0.875 ... never reaches 1 (no spike).
    assert lif_multistep(torch.ones(4, 1)).flatten().tolist() == [0, 0, 0, 0]
    # X = 2: H = 1.0 fires on equality, resets to 0, fires again.
    assert lif_multistep(torch.full((3, 1), 2.0)).flatten().tolist() == [1, 1, 1]
    # Below threshold then charge: 1.5 → H 0.75; 1.5 → H 1.125 fires; reset → 0.75.
    assert lif_multistep(torch.full((3, 1), 1.5)).flatten().tolist() == [0, 1, 0]


def test_matches_naive_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 50, generator=g) * 2
    for v_th in (1.0, 0.5):
        got = lif_multistep(x, v_threshold=v_th)
        for j in range(x.shape[1]):
            assert got[:, j].tolist() == _naive_lif(x[:, j].tolist(), v_th)


def test_half_threshold_equality():
    # The SDSA neuron: input 1 gives H = 0.5 = V_th → fires.
    assert MultiStepLIF(v_threshold=0.5)(torch.ones(2, 1)).flatten().tolist() == [1, 1]


def test_state_resets_between_calls():
    lif = MultiStepLIF()
    x = torch.full((1, 3), 1.5)  # one step: H = 0.75, no spike; a kept state would fire next
    assert lif(x).sum() == 0
    assert lif(x).sum() == 0


def test_no_state_dict_entries():
    assert MultiStepLIF().state_dict() == {}


def test_surrogate_gradient():
    x = torch.tensor([[1.5], [0.5]], requires_grad=True)
    lif_multistep(x).sum().backward()
    assert x.grad is not None and torch.all(x.grad != 0)
    # At t=0: H = x/2, dS/dx = α σ'(α(H-1)) · 1/2, with H = 0.75.
    sg = torch.sigmoid(torch.tensor(4.0 * (0.75 - 1.0)))
    expected_direct = 4.0 * sg * (1 - sg) * 0.5
    assert torch.isfinite(x.grad).all() and x.grad[1, 0] > 0
    # x[0] also reaches S[1] through the membrane, so its gradient exceeds the direct term.
    assert x.grad[0, 0] > expected_direct * 0.99
