"""An explicand's values do not depend on the other rows explained with it: explaining rows in
blocks of any size gives the bits of explaining them all at once. This is what lets the Ray
backend and chunked file runs split a data set anywhere; BLAS picks its kernels by a
product's number of rows, so per-explicand sums must be computed for each row alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from xai.models import rowwise_product


def _cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 3))


@pytest.mark.parametrize("removal, summary, options", [
    ("blur", "kernelshap", {"budget": 300}),
    ("baseline", "exact-shapley", {}),
    ("baseline", "exact-banzhaf", {}),
    ("baseline", "banzhaf-sampling", {"budget": 300}),
    ("baseline", "kernel-banzhaf", {"budget": 300}),
    ("baseline", "permutation", {"budget": 300}),
    ("baseline", "lime", {"budget": 300}),
    ("baseline", "rise", {"budget": 300}),
    ("blur", "ra-kernelshap", {"budget": 300}),
])
@pytest.mark.parametrize("block", [1, 6, 7])
def test_image_values_are_the_same_bits_in_blocks_of_any_size(removal, summary, options, block):
    X = np.random.default_rng(1).normal(size=(20, 1, 8, 8)).astype(np.float32)
    explainer = xai.Explainer(removal, "prediction", summary, seed=2, progress=False, **options)
    whole = explainer.explain(_cnn(), X, features=4)
    parts = [explainer.explain(_cnn(), X[a:a + block], features=4)
             for a in range(0, len(X), block)]
    for name in ("values", "stderr", "base_values"):
        joined = np.concatenate([np.atleast_1d(getattr(p, name)) for p in parts])
        assert np.array_equal(joined, np.atleast_1d(getattr(whole, name)), equal_nan=True), name


@pytest.mark.parametrize("n, p, d, tail", [(40, 16, 4, ()), (33, 300, 30, (3,)),
                                           (5, 1024, 16, ()), (21, 64, 8, (2,))])
def test_rowwise_product_is_the_einsum_and_the_same_for_a_row_in_any_block(n, p, d, tail):
    gen = torch.Generator().manual_seed(n)
    y = torch.randn((n, p, *tail), dtype=torch.float64, generator=gen)
    M = torch.randn((p, d), dtype=torch.float64, generator=gen)
    out = rowwise_product(y, M)
    assert out.shape == (n, d, *tail)
    assert torch.allclose(out, torch.einsum("np...,pd->nd...", y, M), rtol=1e-12, atol=1e-12)
    for a, b in [(0, 1), (0, 6), (3, 17), (n - 2, n)]:
        assert torch.equal(rowwise_product(y[a:b], M), out[a:b])


@pytest.mark.parametrize("summary", ["ra-kernelshap", "ra-kernelshap-net"])
def test_regression_adjusted_tabular_values_are_the_same_bits_in_blocks(summary):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    X = np.random.default_rng(0).normal(size=(12, 10)).astype(np.float32)
    B = np.random.default_rng(1).normal(size=(8, 10)).astype(np.float32)
    explainer = xai.Explainer("marginal", "prediction", summary, seed=1, budget=600,
                              output="probability", target=1, progress=False)
    whole = explainer.explain(net, X, background=B)
    for block in (1, 5):
        parts = [explainer.explain(net, X[a:a + block], background=B)
                 for a in range(0, len(X), block)]
        for name in ("values", "stderr"):
            joined = np.concatenate([getattr(p, name) for p in parts])
            assert np.array_equal(joined, getattr(whole, name)), (summary, block, name)


def test_rowwise_map_is_the_function_and_the_same_for_a_row_in_any_block():
    from xai.models import rowwise_map

    t = torch.randn(13, 37, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out = rowwise_map(torch.sigmoid, t)
    assert torch.allclose(out, torch.sigmoid(t), rtol=1e-15, atol=0)
    for a, b in [(0, 1), (3, 8), (12, 13)]:
        assert torch.equal(rowwise_map(torch.sigmoid, t[a:b]), out[a:b])
