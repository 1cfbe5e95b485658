"""NeuralBeta on CUDA: the network's forward and backward pass on the GPU match the CPU's.

Marked ``gpu``: skipped when ``torch.cuda.is_available()`` is false (``pytest -m gpu`` runs
only these). Float64 throughout, so cuDNN and the CPU kernels agree to rounding.
"""

from __future__ import annotations

import pytest
import torch

from beta_pipeline.lib.nn import NeuralBeta, NeuralBetaConfig

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(120)]

PRESETS = ("gru_nb", "gru_nbi", "attn_nb", "attn_nbi")


@pytest.mark.parametrize("preset", PRESETS)
def test_forward_backward_on_cuda_matches_cpu(preset: str) -> None:
    torch.manual_seed(0)
    cfg = NeuralBetaConfig.preset(preset, d=2, window=32, hidden=16)
    cpu = NeuralBeta(cfg).double()
    if cfg.head == "nbi":
        torch.nn.init.normal_(cpu.head.linear.weight, std=0.1)  # else no encoder gradient
    # training mode (cuDNN's GRU backward needs it); dropout is 0: no randomness
    gpu = NeuralBeta(cfg).double()
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.to("cuda")
    assert all(p.is_cuda for p in gpu.parameters())

    x, y = torch.randn(5, 32, 2, dtype=torch.float64), torch.randn(5, 32, dtype=torch.float64)
    x_next, y_next = torch.randn(5, 2, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    grads = {}
    for name, model, device in (("cpu", cpu, "cpu"), ("cuda", gpu, "cuda")):
        beta, w = model(x.to(device), y.to(device))
        assert beta.device.type == device and beta.shape == (5, 2)
        loss = (y_next.to(device) - (beta * x_next.to(device)).sum(-1)).pow(2).mean()
        loss.backward()
        grads[name] = {k: p.grad.detach().cpu() for k, p in model.named_parameters()}
        grads[name]["beta"] = beta.detach().cpu()
        if w is not None:
            grads[name]["weights"] = w.detach().cpu()
    assert grads["cuda"].keys() == grads["cpu"].keys()
    for key, expected in grads["cpu"].items():
        got = grads["cuda"][key]
        assert torch.isfinite(got).all(), key
        torch.testing.assert_close(
            got, expected, rtol=1e-7, atol=1e-9, msg=lambda m, k=key: f"{k}: {m}"
        )
