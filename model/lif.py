"""Multi-step leaky integrate-and-fire neuron in plain PyTorch (surrogate-gradient trainable).

Semantics (``docs/model.md``; DESIGN §2): τ = 2, decay_input, hard reset to 0, detach_reset,
sigmoid surrogate with α = 4::

    H[t] = V[t-1] + (X[t] - V[t-1]) / τ
    S[t] = H[t] >= V_th
    V[t] = 0 if S[t] else H[t]

The membrane state starts at 0 on every call, so consecutive images never share state.
"""

import torch
from torch import nn

__all__ = ["MultiStepLIF", "lif_multistep", "spike_fn"]


class _SigmoidSpike(torch.autograd.Function):
    """Heaviside step forward; derivative of ``sigmoid(α·x)`` backward."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        # ``>=``: the neuron fires on equality, which the integer model relies on.
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.alpha * x)
        return grad_out * ctx.alpha * sg * (1.0 - sg), None


def spike_fn(x, alpha=4.0):
    """Spike ``x >= 0`` with the sigmoid surrogate gradient ``α·σ(αx)·(1-σ(αx))``."""
    return _SigmoidSpike.apply(x, alpha)


def lif_multistep(x, tau=2.0, v_threshold=1.0, alpha=4.0):
    """Run the LIF over the leading time axis of ``x`` (``[T, ...]``); returns 0/1 spikes."""
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = v + (x[t] - v) / tau
        s = spike_fn(h - v_threshold, alpha)
        # detach_reset: the reset path carries no gradient, as in the reference training.
        v = h * (1.0 - s.detach())
        out.append(s)
    return torch.stack(out)


class MultiStepLIF(nn.Module):
    """Stateless multi-step LIF layer: input ``[T, ...]`` currents, output ``[T, ...]`` spikes.

    Parameters
    ----------
    tau : float
        Membrane time constant (2 in SDT v1; the integer model needs a power of two).
    v_threshold : float
        Firing threshold (1.0; 0.5 for the SDSA mask neuron).
    alpha : float
        Steepness of the sigmoid surrogate gradient.

    Notes
    -----
    The layer keeps no state between calls and has no parameters or buffers, so it adds no
    ``state_dict`` keys.
    """

    def __init__(self, tau=2.0, v_threshold=1.0, alpha=4.0):
        super().__init__()
        self.tau = float(tau)
        self.v_threshold = float(v_threshold)
        self.alpha = float(alpha)

    def forward(self, x):
        return lif_multistep(x, self.tau, self.v_threshold, self.alpha)

    def extra_repr(self):
        return f"tau={self.tau}, v_threshold={self.v_threshold}, alpha={self.alpha}"
