"""bridge: the network side produces unaries, the `mrf` step produces the new labelling (Theorem 3.1, Prop. 3.1)."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

import mrf
from bridge.demo_data import load_demo_mnist
from bridge.methods import make_method
from bridge.optimizer import ProximalMeanFieldOptimizer
from bridge.unaries import as_rows, unaries_from_grad
from nnquant.binaryconnect import binarize_model
from nnquant.models import LeNet300
from nnquant.uspace import quantize_model, set_retain_unaries, uspace_layers


def mnist_batch(n=100):
    x, y = load_demo_mnist("train").tensors
    return x[:n].double(), y[:n]


def test_pgd_form_step_is_softmax_of_u_minus_eta_g_on_lenet300():
    """One step of "PMF wo ũ" on LeNet-300 (float64, a MNIST batch) = softmax(β(u^k − ηg)) from autograd, to 1e-9."""
    torch.manual_seed(0)
    float_model = LeNet300().double()
    beta, eta = 3.0, 0.05
    method = make_method("pmf_wo_aux", beta=mrf.BetaSchedule(beta0=beta, rho=1.0))
    trained = method.prepare(float_model)
    x, y = mnist_batch()
    layers = uspace_layers(trained)
    u0 = {f"{n}.{k}": p.detach().clone() for n, layer in layers.items() for k, p in layer.latent.items()}

    # independent computation: the float model with w = u q, autograd's gradient w.r.t. u, torch.softmax
    q = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    u_leaf = {k: v.clone().requires_grad_(True) for k, v in u0.items()}
    loss = nn.functional.cross_entropy(functional_call(float_model, {k: v @ q for k, v in u_leaf.items()}, (x,)), y)
    grads = torch.autograd.grad(loss, list(u_leaf.values()))
    expected = {k: torch.softmax(beta * (u0[k] - eta * g), -1) for k, g in zip(u_leaf, grads, strict=True)}

    optimizer = torch.optim.SGD(method.trainable(trained), lr=eta)
    method.before_step(trained, 0)
    nn.functional.cross_entropy(trained(x), y).backward()
    method.after_backward(trained, optimizer, 0)
    for n, layer in layers.items():
        for k, p in layer.latent.items():
            torch.testing.assert_close(p.detach(), expected[f"{n}.{k}"], atol=1e-9, rtol=0)


def test_unaries_are_q_times_the_weight_gradient():
    """u.grad of a u-space model is θ = q ⊗ ∂L/∂w, with ∂L/∂w taken independently on the float model."""
    torch.manual_seed(1)
    float_model = LeNet300().double()
    qmodel = quantize_model(float_model, 3)
    set_retain_unaries(qmodel)
    x, y = mnist_batch(20)
    nn.functional.cross_entropy(qmodel(x), y).backward()
    weights = {}
    for name, layer in uspace_layers(qmodel).items():
        for key, u in layer.last_u.items():
            weights[f"{name}.{key}"] = (u.detach() @ layer.levels).requires_grad_(True)
    loss = nn.functional.cross_entropy(functional_call(float_model, weights, (x,)), y)
    grad_w = dict(zip(weights, torch.autograd.grad(loss, list(weights.values())), strict=True))
    for name, layer in uspace_layers(qmodel).items():
        for key, u in layer.last_u.items():
            torch.testing.assert_close(u.grad, unaries_from_grad(grad_w[f"{name}.{key}"], layer.levels))
            rows = as_rows(u.grad)
            assert rows.shape == (u.numel() // 3, 3) and rows.data_ptr() == u.grad.data_ptr()  # a view, no copy


def small_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    x = torch.randn(64, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (64,), generator=g)
    return net, x, y


def test_picm_reproduces_binaryconnect_for_100_full_batch_steps():
    """Prop. 3.1: hardmax + Eq. 40 with η_u = η_w/2 gives hardmax(ũ)q == sign(w̃) and ũq == w̃ at every step."""
    torch.manual_seed(0)
    net, x, y = small_problem()
    picm = make_method("picm")
    qnet = picm.prepare(net)
    bc = binarize_model(net)
    q = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    latents_u = [p for layer in uspace_layers(qnet).values() for p in layer.latent.values()]
    latents_w = [p for n, p in bc.named_parameters() if n.endswith("_latent")]
    with torch.no_grad():  # w̃^0 = ũ^0 q, scaled so that many |w̃| stay inside the STE window
        for pu, pw in zip(latents_u, latents_w, strict=True):
            pu.mul_(0.5)
            pw.copy_(pu @ q)
    eta_w = 0.2
    opt_u = torch.optim.SGD(latents_u, lr=eta_w / 2)
    opt_w = torch.optim.SGD(latents_w, lr=eta_w)
    flips = 0
    for k in range(100):
        for model, opt in ((qnet, opt_u), (bc, opt_w)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        for pu, pw in zip(latents_u, latents_w, strict=True):
            torch.testing.assert_close(pu.detach() @ q, pw.detach(), atol=1e-10, rtol=0)
            assert torch.equal(mrf.hardmax(pu.detach()) @ q, torch.where(pw > 0, 1.0, -1.0).double())
        if k == 0:
            signs0 = [torch.sign(p.detach()).clone() for p in latents_w]
    flips = sum(int((torch.sign(p.detach()) != s).sum()) for p, s in zip(latents_w, signs0, strict=True))
    assert flips > 0  # the trajectory really moved labels, so the equality above is not vacuous


def test_optimizer_wrapper_keeps_w_equal_to_projected_latents_and_rounds_to_levels():
    torch.manual_seed(0)
    net, x, y = small_problem(1)
    base = torch.optim.Adam([{"params": net.parameters(), "levels": 3}], lr=1e-2)
    opt = ProximalMeanFieldOptimizer(base, beta=mrf.BetaSchedule.for_budget(60))
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    beta = opt.beta(opt.step_count)
    for w, aux, q in opt.quantized:
        torch.testing.assert_close(w.detach(), mrf.softmax(aux.detach(), beta) @ q)
    assert losses[-1] < losses[0]
    opt.round_()
    for p in net.parameters():
        assert set(p.detach().unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert len(net[0].weight.unique()) == 3


def test_optimizer_wrapper_step_is_the_mrf_step_on_the_unaries():
    net, x, y = small_problem(2)
    base = torch.optim.SGD([{"params": net.parameters(), "levels": 2}], lr=0.1)
    opt = ProximalMeanFieldOptimizer(
        base, projection="softmax", jacobian="true", beta=mrf.BetaSchedule(beta0=2.0, rho=1.0)
    )
    before = [aux.detach().clone() for _, aux, _ in opt.quantized]
    nn.functional.cross_entropy(net(x), y).backward()
    grads = [w.grad.clone() for w, _, _ in opt.quantized]
    opt.step()
    for (_, aux, q), a0, g in zip(opt.quantized, before, grads, strict=True):
        expected = mrf.aux_step(a0, unaries_from_grad(g, q), 2.0, 0.1, "softmax", "true")
        torch.testing.assert_close(aux.detach(), expected)


def test_optimizer_wrapper_rejects_groups_without_levels():
    net, _, _ = small_problem()
    with pytest.raises(ValueError, match="levels"):
        ProximalMeanFieldOptimizer(torch.optim.SGD(net.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="levels"):
        ProximalMeanFieldOptimizer(torch.optim.SGD([{"params": net.parameters(), "levels": [1.0, 0.0]}], lr=0.1))
