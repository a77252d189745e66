"""Drop-in optimizer wrapper: train any float model with proximal mean-field, one line changed.

    base = torch.optim.Adam([{"params": model.parameters(), "levels": 2}], lr=1e-3)
    opt = ProximalMeanFieldOptimizer(base, beta=mrf.BetaSchedule.for_budget(iterations))
    ...  # the usual loop: loss.backward(); opt.step(); opt.zero_grad()
    opt.round_()  # the model's quantized parameters now hold exactly the levels

Like torchao's PARQ ``QuantOptimizer``: param groups that carry ``levels`` are quantized, others train in
float; the latent variables ũ (one row of d entries per weight) live in the optimizer's state, and the base
optimizer acts on them. The model's parameters always hold w = P_β(ũ) q, so its forward is unchanged.
Each step turns ∂L/∂w into the unaries θ = q ⊗ ∂L/∂w and takes the `mrf` step g_ũ = θ · ∂u/∂ũ.
"""

from __future__ import annotations

import torch

from bridge.unaries import unaries_from_grad
from mrf import BetaSchedule, project, project_vjp
from mrf.projections import default_jacobian
from nnquant.levels import make_levels
from nnquant.uspace import check_projection


class ProximalMeanFieldOptimizer:
    """Wraps ``base``; quantizes the params of every group with a ``levels`` key (count d or level list).

    projection: "softmax" (PMF), "sparsemax" (PGD) or "hardmax" (PICM); jacobian: see `mrf.project_vjp`
    (default: "pmf_repo" for softmax as the paper's code, the true Jacobian for sparsemax, Eq. 40 for hardmax).
    beta: the β schedule, a function of the step count. ũ starts at w ⊗ q, so P_1(ũ)q = tanh(w) for binary q:
    the sign of each float weight is kept.
    """

    def __init__(
        self,
        base: torch.optim.Optimizer,
        *,
        beta: BetaSchedule | None = None,
        projection: str = "softmax",
        jacobian: str | None = None,
    ) -> None:
        self.base = base
        self.beta = beta or BetaSchedule()
        self.projection = projection
        self.jacobian = jacobian or ("pmf_repo" if projection == "softmax" else default_jacobian(projection))
        self.step_count = 0
        self.quantized: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []  # (w, ũ, q)
        for group in base.param_groups:
            if "levels" not in group:
                continue
            q = make_levels(group["levels"])
            check_projection(projection, self.jacobian, len(q))
            latents = []
            for w in group["params"]:
                if base.state.get(w):
                    raise ValueError("base optimizer already has state: wrap it before its first step")
                qw = q.to(w)
                aux = (w.detach().unsqueeze(-1) * qw).requires_grad_(True)
                self.quantized.append((w, aux, qw))
                latents.append(aux)
            group["params"] = latents  # the base optimizer now updates ũ, not w
        if not self.quantized:
            raise ValueError("no param group carries 'levels': nothing would be quantized")
        self._write_weights()

    @property
    def param_groups(self) -> list[dict]:
        return self.base.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none)
        for w, _, _ in self.quantized:
            w.grad = None

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        beta = self.beta(self.step_count)
        for w, aux, q in self.quantized:
            if w.grad is not None:
                aux.grad = project_vjp(aux, unaries_from_grad(w.grad, q), beta, self.projection, self.jacobian)
        self.base.step()
        self.step_count += 1
        self._write_weights()
        return loss

    @torch.no_grad()
    def _write_weights(self) -> None:
        beta = self.beta(self.step_count)
        for w, aux, q in self.quantized:
            w.copy_(project(aux, beta, self.projection) @ q)

    @torch.no_grad()
    def round_(self) -> None:
        """Write hardmax(ũ) q into the model: every quantized parameter then holds only level values."""
        for w, aux, q in self.quantized:
            w.copy_(project(aux, 1.0, "hardmax") @ q)

    def state_dict(self) -> dict:
        return {
            "base": self.base.state_dict(),
            "step_count": self.step_count,
            "latents": [a for _, a, _ in self.quantized],
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        if len(state["latents"]) != len(self.quantized):
            raise ValueError(
                f"state holds {len(state['latents'])} latent tensors, this optimizer has {len(self.quantized)}"
            )
        for (_, aux, _), saved in zip(self.quantized, state["latents"], strict=True):
            aux.copy_(saved)
        self.base.load_state_dict(state["base"])
        self.step_count = int(state["step_count"])
        self._write_weights()
