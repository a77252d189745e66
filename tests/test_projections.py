"""mrf.projections: the projections, their Jacobians, the β schedule and the proximal step (NumPy and torch)."""

import numpy as np
import pytest
import torch

from mrf import projections as P
from mrf.schedule import BetaSchedule

RNG = np.random.default_rng(0)


def as_backend(x, backend, dtype):
    if backend == "numpy":
        return x.astype(dtype)
    return torch.tensor(x, dtype={np.float32: torch.float32, np.float64: torch.float64}[dtype])


def to_numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


BACKENDS = [(b, t) for b in ("numpy", "torch") for t in (np.float32, np.float64)]


@pytest.mark.parametrize(("backend", "dtype"), BACKENDS)
@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_theorem_3_1_optimality_condition(backend, dtype, d):
    """u* = softmax(β(u^k − ηg)) satisfies ηg − u^k + (1 + log u*)/β = const per row (the KKT condition)."""
    m = 200
    uk = P.softmax(RNG.normal(size=(m, d)))
    g = RNG.normal(size=(m, d))
    eta, beta = RNG.uniform(0.1, 2.0), RNG.uniform(0.5, 20.0)
    ustar = P.proximal_step(as_backend(uk, backend, dtype), as_backend(g, backend, dtype), beta, eta)
    assert type(ustar) is type(as_backend(uk, backend, dtype))
    log_u = to_numpy(P.log_softmax(as_backend(uk - eta * g, backend, dtype), beta)).astype(np.float64)
    np.testing.assert_allclose(np.exp(log_u), to_numpy(ustar), rtol=1e-5, atol=1e-7)
    kkt = eta * g - uk + (1 + log_u) / beta
    spread = kkt.max(1) - kkt.min(1)
    assert spread.max() < (1e-9 if dtype == np.float64 else 2e-5)


def test_proximal_step_minimises_the_proximal_objective():
    """J(u*) ≤ J(z) for Dirichlet samples z, J(u) = η⟨g,u⟩ − ⟨u^k,u⟩ + (1/β)Σ u log u (Eq. 15)."""
    d, eta, beta = 3, 0.7, 4.0
    uk, g = P.softmax(RNG.normal(size=d)), RNG.normal(size=d)
    ustar = P.proximal_step(uk, g, beta, eta)

    def J(u):
        return eta * u @ g - u @ uk + (u * np.log(u)).sum(-1) / beta

    z = RNG.dirichlet(np.ones(d), size=5000)
    assert J(ustar) <= J(z).min() + 1e-12


def test_proximal_icm_solves_the_lp():
    """hardmax(u^k − ηg) minimises η⟨g,u⟩ − ⟨u^k,u⟩ over the simplex (Eq. 18): its value is the row minimum."""
    uk, g, eta = P.softmax(RNG.normal(size=(50, 4))), RNG.normal(size=(50, 4)), 0.5
    u = P.proximal_step(uk, g, 1.0, eta, projection="hardmax")
    np.testing.assert_allclose((u * (eta * g - uk)).sum(1), (eta * g - uk).min(1))


@pytest.mark.parametrize(("backend", "dtype"), BACKENDS)
def test_finite_at_large_beta_and_unaries(backend, dtype):
    uk = as_backend(P.softmax(RNG.normal(size=(100, 3))), backend, dtype)
    g = as_backend(RNG.normal(size=(100, 3)) * 1e6, backend, dtype)
    for projection in P.PROJECTIONS:
        u = to_numpy(P.proximal_step(uk, g, 1e4, 1.0, projection))
        assert np.all(np.isfinite(u))
        np.testing.assert_allclose(u.sum(1), 1, rtol=1e-5)
        assert u.min() >= 0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_projections_are_on_the_simplex_and_match_definitions(backend):
    x = RNG.normal(size=(300, 4))
    xb = as_backend(x, backend, np.float64)
    s = to_numpy(P.softmax(xb, 2.5))
    np.testing.assert_allclose(s, np.exp(2.5 * x) / np.exp(2.5 * x).sum(1, keepdims=True), rtol=1e-12)
    h = to_numpy(P.hardmax(xb))
    np.testing.assert_array_equal(h.argmax(1), x.argmax(1))
    assert set(np.unique(h)) == {0.0, 1.0}
    sp = to_numpy(P.sparsemax(xb, 1.5))
    np.testing.assert_allclose(sp.sum(1), 1, rtol=1e-12)
    assert sp.min() >= 0
    # sparsemax is the Euclidean projection: it beats every Dirichlet sample in ‖z − βx‖
    z = RNG.dirichlet(np.ones(4), size=2000)
    for row in range(5):
        assert np.sum((sp[row] - 1.5 * x[row]) ** 2) <= np.sum((z - 1.5 * x[row]) ** 2, axis=1).min() + 1e-12


def test_hardmax_ties_go_to_the_first_label():
    """sign(0) = −1: with q = [−1, 1] a tie picks level −1 (index 0), in NumPy and torch alike."""
    x = np.zeros((3, 2))
    np.testing.assert_array_equal(P.hardmax(x)[:, 0], 1)
    np.testing.assert_array_equal(P.hardmax(torch.zeros(3, 2))[:, 0].numpy(), 1)


def test_absent_labels_get_zero_probability():
    x = np.array([[0.3, -np.inf, 1.0], [-np.inf, 2.0, -np.inf]])
    for projection in P.PROJECTIONS:
        u = P.project(x, 3.0, projection)
        assert u[0, 1] == 0 and u[1, 0] == 0 and u[1, 2] == 0
        np.testing.assert_allclose(u.sum(1), 1)


def numerical_vjp(f, x, g, h=1e-6):
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        out[idx] = ((f(x + e) - f(x - e)) * g).sum() / (2 * h)
    return out


@pytest.mark.parametrize("projection", ["softmax", "sparsemax"])
def test_true_jacobians_match_finite_differences(projection):
    x, g, beta = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 4)), 1.7
    expected = numerical_vjp(lambda a: P.project(a, beta, projection), x, g)
    np.testing.assert_allclose(P.project_vjp(x, g, beta, projection, "true"), expected, atol=1e-6)


def test_pmf_repo_jacobian_matches_the_documented_example():
    """β=5, ũ=(0.3,−0.2): the reference code's J = β(I − ssᵀ), s = softmax(β softmax(βũ)) (pmf-method §5.5)."""
    aux = np.array([[0.3, -0.2]])
    J = np.stack([P.project_vjp(aux, e[None], 5.0, "softmax", "pmf_repo")[0] for e in np.eye(2)])
    np.testing.assert_allclose(J, [[0.14, -0.07], [-0.07, 5.00]], atol=0.006)
    Jmd = np.stack([P.project_vjp(aux, e[None], 5.0, "softmax", "md_code")[0] for e in np.eye(2)])
    np.testing.assert_allclose(Jmd, [[0.73, -0.35], [-0.35, 4.97]], atol=0.006)


def test_ste_is_equation_40_for_binary():
    aux = np.array([[0.2, -0.3], [2.0, 0.5], [0.0, 0.9]])
    g = RNG.normal(size=(3, 2))
    ups = aux[:, 0] - aux[:, 1]
    J = 0.5 * (np.abs(ups) <= 1)[:, None, None] * np.array([[1.0, -1.0], [-1.0, 1.0]])
    np.testing.assert_allclose(P.project_vjp(aux, g, 1.0, "hardmax"), np.einsum("na,nab->nb", g, J))


@pytest.mark.parametrize("projection", P.PROJECTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_autograd_uses_project_vjp(projection, dtype):
    x = torch.tensor(RNG.normal(size=(8, 3)), dtype=dtype, requires_grad=True)
    g = torch.tensor(RNG.normal(size=(8, 3)), dtype=dtype)
    jac = P.default_jacobian(projection)
    (P.project(x, 2.0, projection, jac) * g).sum().backward()
    expected = P.project_vjp(x.detach(), g, 2.0, projection, jac)
    torch.testing.assert_close(x.grad, expected)
    if projection == "softmax":
        y = x.detach().clone().requires_grad_(True)
        (torch.softmax(2.0 * y, -1) * g).sum().backward()
        torch.testing.assert_close(x.grad, y.grad)


def test_aux_step_is_gradient_descent_through_the_projection():
    aux, g = RNG.normal(size=(5, 3)), RNG.normal(size=(5, 3))
    new = P.aux_step(aux, g, 2.0, 0.1, "softmax", "true")
    np.testing.assert_allclose(new, aux - 0.1 * P.project_vjp(aux, g, 2.0, "softmax", "true"))


def test_beta_schedule_paper_and_reference_quirk():
    s = BetaSchedule(beta0=1.0, rho=1.2, interval=100, cap=1e4)
    assert [s(k) for k in (0, 99, 100, 250)] == [1.0, 1.0, 1.2, pytest.approx(1.44)]
    quirk = BetaSchedule(rho=1.2, interval=100, update_at_zero=True)
    assert [quirk(k) for k in (0, 1, 100, 101)] == [1.0, 1.2, 1.2, pytest.approx(1.44)]
    assert s(10**9) == 1e4


def test_beta_schedule_for_budget_reaches_the_cap_near_the_end():
    for iterations in (50, 2000, 20000, 100000):
        s = BetaSchedule.for_budget(iterations)
        assert s(int(0.85 * iterations)) < 1e4
        assert s(iterations - 1) == 1e4
    assert BetaSchedule.for_budget(20000).interval == 100


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: P.softmax(np.zeros((2, 2)), beta=0.0), "beta"),
        (lambda: P.softmax(np.zeros((2, 2)), beta=np.nan), "beta"),
        (lambda: P.project(np.zeros((2, 2)), 1.0, "argmax"), "projection"),
        (lambda: P.project_vjp(np.zeros((2, 2)), np.zeros((2, 2)), 1.0, "sparsemax", "pmf_repo"), "jacobian"),
        (lambda: P.proximal_step(np.zeros((2, 2)), np.zeros((2, 2)), 1.0, -1.0), "eta"),
        (lambda: BetaSchedule(rho=0.5), "rho"),
        (lambda: BetaSchedule(interval=0), "interval"),
        (lambda: BetaSchedule.for_budget(0), "iterations"),
        (lambda: BetaSchedule(beta0=True), "beta0"),
        (lambda: BetaSchedule(cap=float("inf")), "cap"),
        (lambda: P.softmax(np.zeros((2, 2)), beta="2"), "beta"),
        (lambda: P.project_vjp(np.zeros((2, 2)), np.zeros((2, 2)), -1.0), "beta"),
    ],
)
def test_bad_arguments_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mrf_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, mrf, numpy as np; mrf.softmax(np.zeros((2, 3))); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("jacobian", ["true", "pmf_repo", "md_code"])
def test_binary_softmax_jacobians_equal_their_matrix_definitions(jacobian):
    """The closed-form d = 2 path against β(diag(u) − uuᵀ), β(I − ssᵀ) with s = softmax(βu), β(I − uuᵀ)."""
    aux, g, beta = RNG.normal(size=(7, 2)) * 3, RNG.normal(size=(7, 2)), 2.5
    u = np.exp(beta * aux) / np.exp(beta * aux).sum(1, keepdims=True)
    if jacobian == "true":
        J = beta * (np.einsum("na,ab->nab", u, np.eye(2)) - np.einsum("na,nb->nab", u, u))
    else:
        s = np.exp(beta * u) / np.exp(beta * u).sum(1, keepdims=True) if jacobian == "pmf_repo" else u
        J = beta * (np.eye(2) - np.einsum("na,nb->nab", s, s))
    expected = np.einsum("na,nab->nb", g, J)
    # C order takes the fused Numba kernel; Fortran order (not C-contiguous) the closed-form array expressions
    for a, b in [(aux, g), (np.asfortranarray(aux), np.asfortranarray(g))]:
        np.testing.assert_allclose(P.project_vjp(a, b, beta, "softmax", jacobian), expected, rtol=1e-12, atol=1e-14)
        got = P.project_vjp(torch.from_numpy(a), torch.from_numpy(b), beta, "softmax", jacobian)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-14)


def _strided(x):
    """The same values in a layout that is not C-contiguous, so the array-expression path runs."""
    return x.t().contiguous().t() if isinstance(x, torch.Tensor) else np.asfortranarray(x)


@pytest.mark.parametrize("d", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("as_torch", [False, True])
def test_fused_kernels_equal_the_array_expressions(d, dtype, as_torch):
    aux = RNG.normal(size=(6, d)) * np.array([4.0, 4.0, 4.0, 0.3, 0.3, 0.3])[:, None]  # saturated and mixed rows
    aux[0, -1] = -np.inf if d > 1 else aux[0, -1]  # a padded label
    g = RNG.normal(size=(6, d))
    aux, g = aux.astype(dtype), g.astype(dtype)
    if as_torch:
        aux, g = torch.from_numpy(aux), torch.from_numpy(g)
    tol = {"rtol": 2e-6, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-13}
    for projection in P.PROJECTIONS:
        fused, plain = P.project(aux, 1.5, projection), P.project(_strided(aux), 1.5, projection)
        assert type(fused) is type(aux) and fused.dtype == aux.dtype
        np.testing.assert_allclose(np.asarray(fused), np.asarray(plain), **tol, err_msg=projection)
    variants = [("softmax", j) for j in ("true", "pmf_repo", "md_code")] + [("sparsemax", "true"), ("hardmax", "ste")]
    for projection, jac in variants:
        fused = P.project_vjp(aux, g, 1.5, projection, jac)
        plain = P.project_vjp(_strided(aux), _strided(g), 1.5, projection, jac)
        assert type(fused) is type(g) and fused.dtype == g.dtype
        np.testing.assert_allclose(np.asarray(fused), np.asarray(plain), **tol, err_msg=f"{projection} {jac}")


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("projection", ["softmax", "sparsemax"])
def test_a_nan_latent_makes_its_row_nan_on_both_paths(d, projection):
    """A diverged latent must not pass as a valid distribution (the kernels' exp and max would drop it)."""
    aux = RNG.normal(size=(4, d))
    aux[1, d - 1] = np.nan
    for a in (aux, _strided(aux), torch.from_numpy(aux), _strided(torch.from_numpy(aux))):
        u = np.asarray(P.project(a, 2.0, projection))
        assert np.isnan(u[1]).all(), (type(a), u[1])
        assert np.isfinite(u[[0, 2, 3]]).all()


def test_dispatcher_constants_match_the_kernels():
    from mrf import _projection_kernels as K

    assert P._SPARSEMAX_KERNEL_D == K.SPARSEMAX_MAX_D
    assert K.VJP_MODES == P._VJP_MODES
