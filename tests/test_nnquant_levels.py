"""Quantization levels: the reference code's level sets, explicit lists, per-layer specs, bad input."""

import math

import pytest
import torch
from torch import nn

from nnquant.levels import levels_for, make_levels


@pytest.mark.parametrize(
    ("d", "expected"),
    [(2, [-1, 1]), (3, [-1, 0, 1]), (4, [-2, -1, 1, 2]), (5, [-2, -1, 0, 1, 2]), (6, [-3, -2, -1, 1, 2, 3])],
)
def test_count_gives_reference_levels(d, expected):
    q = make_levels(d)
    assert q.dtype == torch.float64
    assert q.tolist() == expected
    assert len(q) == d


def test_explicit_levels_kept_exactly():
    assert make_levels([-0.5, 0.25, 3]).tolist() == [-0.5, 0.25, 3.0]
    assert make_levels(torch.tensor([-1.0, 1.0])).tolist() == [-1.0, 1.0]


@pytest.mark.parametrize(
    ("levels", "match"),
    [
        (1, ">= 2"),
        (0, ">= 2"),
        ([1.0], "at least 2"),
        ([1.0, -1.0], "strictly increasing"),
        ([-1.0, 0.0, 0.0, 1.0], "duplicates"),
        ([-1.0, math.nan], "finite"),
        ([-math.inf, 1.0], "finite"),
    ],
)
def test_bad_levels_raise(levels, match):
    with pytest.raises(ValueError, match=match):
        make_levels(levels)


@pytest.mark.parametrize("levels", [True, "abc", None, [1, "x"]])
def test_wrong_type_raises(levels):
    with pytest.raises(TypeError, match="levels"):
        make_levels(levels)


def test_per_layer_dict_exact_name_beats_pattern_and_missing_entry_raises():
    fc = nn.Linear(2, 2)
    spec = {"features.*": 3, "classifier.2": [-2.0, 2.0], "classifier.*": 2}
    assert levels_for(spec, "features.0", fc).tolist() == [-1, 0, 1]
    assert levels_for(spec, "classifier.2", fc).tolist() == [-2, 2]
    assert levels_for(spec, "classifier.0", fc).tolist() == [-1, 1]
    with pytest.raises(ValueError, match="no entry for module 'head'"):
        levels_for(spec, "head", fc)


def test_per_layer_callable_sees_name_and_module():
    def spec(name, module):
        return 3 if isinstance(module, nn.Conv2d) else 2

    assert len(levels_for(spec, "conv", nn.Conv2d(1, 1, 1))) == 3
    assert len(levels_for(spec, "fc", nn.Linear(1, 1))) == 2
