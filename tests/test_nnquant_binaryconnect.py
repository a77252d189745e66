"""BinaryConnect: sign(0) = −1, straight-through gradient 1[|w̃| ≤ 1], rounding, clipping, methods protocol."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mrf
from nnquant.binaryconnect import SignLayer, binarize_model, sign, sign_ste
from nnquant.methods import BinaryConnect, Float, USpaceMethod
from nnquant.rounding import count_levels
from nnquant.uspace import USpaceLayer, uspace_layers


def test_sign_of_zero_is_minus_one_like_hardmax_ties():
    w = torch.tensor([-2.0, -0.0, 0.0, 1e-30, 3.0])
    assert sign(w).tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0]
    # hardmax on ũ = (−w, w) with ties → first label (−1): the same rounding as sign
    u = mrf.hardmax(torch.stack([-w, w], -1))
    assert (u @ torch.tensor([-1.0, 1.0])).tolist() == sign(w).tolist()


def test_straight_through_gradient():
    w = torch.tensor([-1.5, -1.0, -0.3, 0.0, 0.7, 1.0, 1.01], requires_grad=True)
    g = torch.arange(1.0, 8.0)
    (sign_ste(w) * g).sum().backward()
    assert w.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]


def test_binarized_layer_forward_backward_and_rounding():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    b = binarize_model(model)
    assert isinstance(b[0], SignLayer) and isinstance(model[0], nn.Conv2d)
    torch.testing.assert_close(b[0].latent["weight"], model[0].weight)
    x = torch.randn(2, 1, 6, 6)
    w, bias = sign(model[0].weight), sign(model[0].bias)
    torch.testing.assert_close(b[0](x), F.conv2d(x, w, bias))
    b(x).sum().backward()
    assert b[0].latent["weight"].grad is not None
    n_signs = {f"{i}.{k}": len(sign(getattr(model[i], k)).unique()) for i in (0, 2) for k in ("weight", "bias")}
    assert n_signs["0.weight"] == n_signs["2.weight"] == 2
    assert count_levels(b) == n_signs
    r = BinaryConnect().rounded(b)
    assert all(set(p.unique().tolist()) <= {-1.0, 1.0} for p in r.parameters())
    assert type(r[0]) is nn.Conv2d and torch.equal(r[0].weight, w)


def test_clip_applied_after_step_only_when_asked():
    model = nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.fill_(0.99)
    for clip, expect_max in [(None, 1.99), (1.0, 1.0)]:
        method = BinaryConnect(clip=clip)
        trained = method.prepare(model)
        opt = torch.optim.SGD(method.trainable(trained), lr=1.0)
        trained(torch.ones(1, 4)).sum().mul(-1).backward()  # gradient pushes w̃ up by 1
        method.after_backward(trained, opt, 0)
        top = trained.latent["weight"].max().item()
        assert top == pytest.approx(expect_max)
    with pytest.raises(ValueError, match="clip"):
        BinaryConnect(clip=0.0)


def test_method_objects():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    f = Float()
    trained = f.prepare(model)
    assert trained is not model and f.rounded(trained) is trained and f.beta_at(5) is None
    schedule = mrf.BetaSchedule(beta0=1.0, rho=2.0, interval=10)
    m = USpaceMethod(levels=3, projection="softmax", jacobian="pmf_repo", beta=schedule)
    trained = m.prepare(model)
    assert all(isinstance(layer, USpaceLayer) for layer in uspace_layers(trained).values())
    m.before_step(trained, 10)
    assert trained[0].beta == 2.0
    m.before_step(trained, 1, reference_quirks=True)  # the reference multiplies right after iteration 0
    assert trained[0].beta == 2.0 and m.beta_at(1) == 1.0
    assert USpaceMethod(projection="hardmax", beta=None).beta_at(1000) == 1.0
    assert count_levels(m.rounded(trained))["0.weight"] <= 3
    with pytest.raises(ValueError, match="jacobian"):
        USpaceMethod(projection="sparsemax", jacobian="pmf_repo")
    with pytest.raises(TypeError, match="BetaSchedule"):
        USpaceMethod(beta=1.2)
    with pytest.raises(ValueError, match="no state"):
        m.load_state_dict({"x": 1})
