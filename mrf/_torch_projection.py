"""The torch autograd wrapper around ``mrf.projections`` (imported only when a tensor needs gradients)."""

from __future__ import annotations

from functools import cache


@cache
def projection_function():
    """An autograd Function u = P_β(ũ) whose backward is ``project_vjp`` with a chosen Jacobian variant."""
    import torch

    from mrf import projections as P

    class _Projection(torch.autograd.Function):
        @staticmethod
        def forward(ctx, aux, beta, projection, jacobian):
            ctx.save_for_backward(aux)
            ctx.args = (beta, projection, jacobian)
            return P._PROJECT[projection](aux.detach(), beta)

        @staticmethod
        def backward(ctx, grad_u):
            (aux,) = ctx.saved_tensors
            beta, projection, jacobian = ctx.args
            # contiguous: the fused CPU kernels take C-ordered rows (a no-op for the usual grad_u)
            return P.project_vjp(aux.detach(), grad_u.contiguous(), beta, projection, jacobian), None, None, None

    return _Projection
