"""An explicand's values do not depend on the other rows explained with it, nor on the number
of threads: explaining rows in blocks of any size, with one thread or two, gives the bits of
explaining them all at once. This is what lets the Ray backend (whose workers hold one CPU
each) and chunked file runs split a data set anywhere; BLAS picks its kernels by a product's
number of rows and splits long sums between threads, so per-explicand sums must be computed
for each row alone, in chunks of a fixed length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from xai.models import INNER_CHUNK, rowwise_matmul, rowwise_product


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


def test_sigmoid_is_the_logistic_function_and_the_same_for_an_element_in_any_tensor(threads):
    from xai.models import sigmoid

    for dtype in (torch.float32, torch.float64):
        t = 6 * torch.randn(70001, dtype=dtype, generator=torch.Generator().manual_seed(2))
        t[:4] = torch.tensor([-800.0, 800.0, 0.0, -0.0])
        threads(2)
        out = sigmoid(t)
        torch.testing.assert_close(out, torch.sigmoid(t), rtol=4 * torch.finfo(dtype).eps,
                                   atol=0)
        assert out[0] == 0 and out[1] == 1 and out[2] == 0.5
        for n in (1, 2):
            threads(n)
            for a, b in [(0, 1), (0, 33), (5, 70), (17, 40001), (1, 70001)]:
                assert torch.equal(sigmoid(t[a:b]), out[a:b]), (dtype, n, a, b)


@pytest.mark.parametrize("summary, options, d", [
    ("kernelshap", {"budget": 3000}, 12),
    ("kernelshap", {"budget": 3000}, 20),
    ("permutation", {"budget": 3000}, 20),
    ("exact-shapley", {}, 12),
    ("kernel-banzhaf", {"budget": 3000}, 12),
    ("ra-kernelshap", {"budget": 3000}, 12),
    ("ra-kernelshap", {"budget": 3000, "link": "identity"}, 12),
    ("ra-kernelshap", {"budget": 3000, "surrogate_samples": 4096}, 20),  # sampled surrogate
    ("ra-kernelshap-net", {"budget": 2000, "steps": 40}, 12),
    ("shap-interactions", {"budget": 3000}, 12),
    ("shap-interactions", {"budget": 3000, "index": "FSII", "link": "identity"}, 12),
])
def test_long_sums_are_the_same_bits_with_one_thread_or_two_and_in_blocks(summary, options, d,
                                                                        threads):
    """Budgets in the thousands: sums over that many coalitions, and fits over that many
    rows, are where BLAS splits work between threads."""
    from threadpoolctl import threadpool_limits

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(d, 24), torch.nn.Tanh(), torch.nn.Linear(24, 2))
    X = np.random.default_rng(0).normal(size=(20, d)).astype(np.float32)
    B = np.random.default_rng(1).normal(size=(8, d)).astype(np.float32)
    explainer = xai.Explainer("marginal", "prediction", summary, seed=1, output="probability",
                              target=1, progress=False, **options)
    runs = {}
    for n in (1, 2):
        threads(n)
        with threadpool_limits(n):
            runs[n] = explainer.explain(net, X, background=B)
    parts = [explainer.explain(net, X[a:a + 7], background=B) for a in range(0, len(X), 7)]
    names = ["values", "stderr"] + (["interactions", "interaction_stderr"]
                                    if summary == "shap-interactions" else [])
    for name in names:
        one, two = (np.asarray(getattr(runs[n], name)) for n in (1, 2))
        assert np.array_equal(one, two, equal_nan=True), (name, np.nanmax(abs(one - two)))
        joined = np.concatenate([np.asarray(getattr(p, name)) for p in parts])
        assert np.array_equal(joined, two, equal_nan=True), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("transposed", [False, True])
def test_rowwise_matmul_rows_are_the_same_bits_with_any_rows_and_threads(dtype, transposed,
                                                                        threads):
    gen = torch.Generator().manual_seed(3)
    for m, k, n in [(1360, 3000, 17), (40, 4096, 16), (33, 300, 1), (160, 2 * INNER_CHUNK, 1),
                    (5, 65536, 16), (48, 700, 272), (50, 1000, 2), (77, 4096, 3), (20, 300, 21), (16, 1100, 16)]:
        A = torch.randn(k, m, generator=gen, dtype=dtype).T if transposed else \
            torch.randn(m, k, generator=gen, dtype=dtype)
        B = torch.randn(k, n, generator=gen, dtype=dtype)
        threads(2)
        whole = rowwise_matmul(A, B)
        tol = 1e-4 if dtype == torch.float32 else 1e-10
        assert torch.allclose(whole, A @ B, rtol=tol, atol=tol * (k ** 0.5))
        for t in (1, 2):
            threads(t)
            assert torch.equal(rowwise_matmul(A, B), whole), (m, k, n, t)
            for a, b in [(0, 1), (1, 17), (16, 33), (m // 2, m)]:
                assert torch.equal(rowwise_matmul(A[a:b], B), whole[a:b]), (m, k, n, t, a, b)
