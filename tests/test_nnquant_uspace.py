"""u-space layers: forward = F.linear/F.conv with w = u q, g_ũ = project_vjp(g_u), rounding, selection errors."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mrf
from nnquant.layers import LayerOp
from nnquant.rounding import count_levels, round_model
from nnquant.uspace import (
    USpaceLayer,
    init_latent,
    quantize_model,
    set_beta,
    set_projection,
    set_retain_unaries,
    uspace_layers,
)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4, affine=False),
        nn.ReLU(),
        nn.Identity(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
        nn.ReLU(),
        nn.Linear(5, 3, bias=False),
    )


def test_input_model_untouched_and_layers_replaced():
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize_model(model, 3)
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert isinstance(model[0], nn.Conv2d)
    layers = uspace_layers(q)
    assert sorted(layers) == ["0", "5", "7"]
    assert layers["0"].latent["weight"].shape == (4, 2, 3, 3, 3)
    assert layers["0"].latent["bias"].shape == (4, 3)
    assert set(layers["7"].latent) == {"weight"}
    assert layers["7"].levels.tolist() == [-1.0, 0.0, 1.0]


@pytest.mark.parametrize("projection", ["softmax", "sparsemax", "hardmax"])
def test_forward_equals_functional_op_with_w_equal_uq(projection):
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=2, dilation=2, groups=1)
    conv1d = nn.Conv1d(4, 6, 3, padding=1, groups=2, padding_mode="circular")
    lin = nn.Linear(7, 5)
    for layer, x, op in [
        (conv, torch.randn(2, 3, 9, 9), lambda x, w, b: F.conv2d(x, w, b, 2, 2, 2, 1)),
        (conv1d, torch.randn(2, 4, 8), lambda x, w, b: F.conv1d(F.pad(x, (1, 1), mode="circular"), w, b, 1, 0, 1, 2)),
        (lin, torch.randn(4, 7), F.linear),
    ]:
        q = quantize_model(layer, [-1.0, 0.5, 2.0], projection=projection, beta=2.5)
        assert isinstance(q, USpaceLayer)
        u = {k: mrf.project(a.detach(), 2.5, projection) for k, a in q.latent.items()}
        levels = torch.tensor([-1.0, 0.5, 2.0])
        w, b = (u["weight"] * levels).sum(-1), (u["bias"] * levels).sum(-1)
        torch.testing.assert_close(q(x), op(x, w, b), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(q.u()["weight"], u["weight"])


@pytest.mark.parametrize(
    ("projection", "jacobian"),
    [("softmax", None), ("softmax", "pmf_repo"), ("softmax", "md_code"), ("sparsemax", None), ("hardmax", "ste")],
)
def test_gradient_wrt_aux_is_project_vjp_of_autograd_g_u(projection, jacobian):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    q = quantize_model(model, 3, projection=projection, jacobian=jacobian, beta=3.0)
    set_retain_unaries(q)
    x, y = torch.randn(5, 2, 6, 6), torch.tensor([0, 1, 2, 3, 0])
    F.cross_entropy(q(x), y).backward()
    checked = 0
    for layer in uspace_layers(q).values():
        for key, aux in layer.latent.items():
            g_u = layer.last_u[key].grad
            assert g_u is not None and g_u.abs().sum() > 0
            expected = mrf.project_vjp(aux.detach(), g_u, 3.0, projection, jacobian)
            torch.testing.assert_close(aux.grad, expected, rtol=1e-6, atol=1e-7)
            checked += 1
    assert checked == 4


def test_g_u_is_g_w_times_q():
    """∂L/∂u_{j:λ} = q_λ ∂L/∂w_j ([S] Eq. 30)."""
    torch.manual_seed(3)
    lin = nn.Linear(4, 2)
    q = quantize_model(lin, [-2.0, 1.0, 3.0])
    set_retain_unaries(q)
    x = torch.randn(3, 4)
    params = q.quantized_params()
    w, b = params["weight"].detach().requires_grad_(), params["bias"].detach()
    (F.linear(x, w, b) ** 2).sum().backward()
    (q(x) ** 2).sum().backward()
    torch.testing.assert_close(q.last_u["weight"].grad, w.grad[..., None] * torch.tensor([-2.0, 1.0, 3.0]))


def test_retain_unaries_is_opt_in_and_model_still_copies():
    q = quantize_model(nn.Linear(3, 2))
    q(torch.randn(1, 3))
    assert q.last_u == {}
    set_retain_unaries(q)
    q(torch.randn(1, 3)).sum().backward()
    assert q.last_u["weight"].grad is not None
    c = copy.deepcopy(q)
    assert c.last_u == {} and c.retain_unaries and torch.equal(c.latent["weight"], q.latent["weight"])


def test_projection_none_stores_u_and_grad_is_unaries():
    torch.manual_seed(4)
    q = quantize_model(nn.Linear(3, 2), 2, projection="none")
    u = q.latent["weight"]
    torch.testing.assert_close(u.sum(-1), torch.ones(2, 3))
    assert (u >= 0).all()
    x = torch.randn(4, 3)
    out = q(x)
    torch.testing.assert_close(out, F.linear(x, u @ q.levels, q.latent["bias"] @ q.levels))
    out.sum().backward()
    g_w = x.sum(0).expand(2, 3)
    torch.testing.assert_close(u.grad, g_w[..., None] * q.levels)
    with pytest.raises(ValueError, match="cannot switch"):
        set_projection(q, "softmax")
    with pytest.raises(ValueError, match="no Jacobian"):
        quantize_model(nn.Linear(3, 2), projection="none", jacobian="true")


def test_set_beta_and_projection_reach_every_layer():
    q = quantize_model(_net())
    set_beta(q, 7.5)
    set_projection(q, "sparsemax", "identity")
    for layer in uspace_layers(q).values():
        assert (layer.beta, layer.projection, layer.jacobian) == (7.5, "sparsemax", "identity")
    with pytest.raises(ValueError, match="beta"):
        set_beta(q, 0.0)
    with pytest.raises(ValueError, match="jacobian"):
        set_projection(q, "sparsemax", "pmf_repo")
    with pytest.raises(ValueError, match="projection"):
        set_projection(q, "argmax")


def test_large_beta_softmax_approaches_rounded_network():
    q = quantize_model(_net(), 2)
    r = round_model(q)
    q.eval()
    r.eval()
    set_beta(q, 1e6)
    x = torch.randn(3, 2, 6, 6)
    for layer in uspace_layers(q).values():
        margin = (layer.latent["weight"][..., 0] - layer.latent["weight"][..., 1]).abs().min()
        assert margin * 1e6 > 20  # softmax saturated for every weight of these random latents
    torch.testing.assert_close(q(x), r(x), rtol=1e-4, atol=1e-4)


def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(20, 300), nn.BatchNorm1d(300, affine=False), nn.ReLU(), nn.Linear(300, 10))


def test_round_model_plain_architecture_values_in_q():
    torch.manual_seed(5)
    model = _mlp()
    for levels, expected in [(2, [-1.0, 1.0]), (3, [-1.0, 0.0, 1.0]), ([-0.5, 0.25, 4.0, 9.0], [-0.5, 0.25, 4.0, 9.0])]:
        q = quantize_model(model, levels)
        q(torch.randn(8, 20))  # updates BN running statistics
        r = round_model(q)
        assert [type(m) for m in r] == [type(m) for m in model]
        assert set(r.state_dict()) == set(model.state_dict())
        assert torch.equal(r[1].running_mean, q[1].running_mean)
        assert sorted(torch.unique(r[0].weight).tolist()) == expected
        counts = count_levels(q)
        assert counts["0.weight"] == len(expected) and counts["3.weight"] == len(expected)
        assert count_levels(r) == counts
        assert torch.equal(r[0].weight, q[0].rounded_weight())
        _mlp().load_state_dict(r.state_dict())  # loads into the original architecture


def test_from_float_init_rounds_to_nearest_level():
    torch.manual_seed(6)
    lin = nn.Linear(50, 40)
    with torch.no_grad():
        lin.weight.mul_(4)
    levels = torch.tensor([-1.0, 0.0, 1.0])
    q = quantize_model(lin, 3, init="from_float")
    w = lin.weight.detach()
    nearest = levels[(w[..., None] - levels).abs().argmin(-1)]
    assert torch.equal(q.rounded_weight(), nearest)


def test_reference_init_uses_expanded_fan():
    torch.manual_seed(7)
    conv = nn.Conv2d(16, 32, 3)
    aux = init_latent(conv.weight, torch.tensor([-1.0, 0.0, 1.0]), "reference", True)
    bound = math.sqrt(6.0 / (16 * 9 + 32 * 3 * 9))
    assert aux.shape == (32, 16, 3, 3, 3)
    assert aux.abs().max() <= bound and aux.abs().max() > 0.95 * bound
    bias = init_latent(conv.bias, torch.tensor([-1.0, 1.0]), "reference", False)
    assert bias.shape == (32, 2) and 0.05 < bias.std() < 0.2


def test_selection_errors_and_include():
    with pytest.raises(ValueError, match="no quantizable layer"):
        quantize_model(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3, affine=False)))
    for bad, kind in [
        (nn.LSTM(3, 3), "LSTM"),
        (nn.ConvTranspose2d(3, 3, 2), "ConvTranspose2d"),
        (nn.BatchNorm1d(3), "BatchNorm1d"),
        (nn.LayerNorm(3), "LayerNorm"),
        (nn.Embedding(4, 3), "Embedding"),
    ]:
        model = nn.Sequential(nn.Linear(3, 3), bad)
        with pytest.raises(ValueError, match=rf"module '1' \({kind}\)"):
            quantize_model(model)
        q = quantize_model(model, include=["0"])  # excluded: stays float and trainable
        assert isinstance(q[0], USpaceLayer) and type(q[1]) is type(bad)
    with pytest.raises(ValueError, match=r"module '1' \(BatchNorm1d\) cannot be quantized"):
        quantize_model(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), include="*")
    q = quantize_model(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2)), include=lambda name, m: name == "1")
    assert isinstance(q[0], nn.Linear) and isinstance(q[1], USpaceLayer)
    with pytest.raises(ValueError, match="already quantized"):
        quantize_model(q)
    with pytest.raises(ValueError, match="init"):
        quantize_model(nn.Linear(2, 2), init="zeros")


def test_layer_op_rebuilds_layer_types():
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2, bias=False, padding_mode="reflect")
    op = LayerOp(conv)
    rebuilt = op.build(conv.weight.detach(), None)
    x = torch.randn(1, 2, 7, 7)
    assert type(rebuilt) is nn.Conv2d and rebuilt.padding_mode == "reflect" and rebuilt.bias is None
    torch.testing.assert_close(rebuilt(x), conv(x))
    torch.testing.assert_close(op.apply(x, conv.weight, None), conv(x))
