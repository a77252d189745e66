"""Numba kernels (placeholder: delegates to the NumPy reference until the kernels land)."""

from mrf import reference


def linearize(m, q):
    return reference.linearize(m, q)
