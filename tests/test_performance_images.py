"""Problems 3 and 4 of the performance benchmark: their own correctness.

Row counters of contenders and floors, the references against brute-force Shapley values, the
completeness gap on a linear model, and the files each problem writes. Tiny sizes; no test
asserts a time.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("captum.attr")
pytest.importorskip("lime")
pytest.importorskip("shap")

from benchmarks.performance import gradients, images
from benchmarks.performance.common import CountingModule

TINY3 = images.SIZES["tiny"]
TINY4 = gradients.SIZES["tiny"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def problem(cache):
    return images.load_image_problem(cache_dir=cache, log=lambda *a: None, **TINY3)


def _contender(name, module=images):
    return next(c for c in module.contenders() if c.name == name)


def test_problem_shapes(problem):
    n = TINY3["n_images"]
    assert problem.images.shape == (n, 3, TINY3["size"], TINY3["size"])
    assert problem.segments.shape == (n, TINY3["size"], TINY3["size"])
    for i, d in enumerate(problem.d):
        assert set(np.unique(problem.segments[i])) == set(range(d))
        # the fill is the per-superpixel, per-channel mean of the image
        for j in range(d):
            sel = problem.segments[i] == j
            np.testing.assert_allclose(problem.fill[i][:, sel].mean(1),
                                       problem.images[i][:, sel].mean(1), rtol=1e-5)
            assert np.ptp(problem.fill[i][:, sel], axis=1).max() == 0
    Z = np.zeros((1, problem.d[0]), bool)
    np.testing.assert_array_equal(problem.masked(0, Z)[0], problem.fill[0])
    np.testing.assert_array_equal(problem.masked(0, ~Z)[0], problem.images[0])


@pytest.mark.parametrize("name, s, calls_per_image", [
    ("lime LimeImageExplainer (batch_size=samples)", 64, 1),
    ("lime LimeImageExplainer (default batch_size=10)", 64, 7),
    ("captum KernelShap (ppe=samples)", 64, 1),
    ("captum KernelShap (default ppe=1)", 16, 16),
    ("captum Lime (lime kernel, ridge)", 64, 1),
])
def test_counter_sees_every_row(problem, name, s, calls_per_image):
    n = TINY3["n_images"]
    problem.counter.reset()
    vals = _contender(name).run(problem, s, 0)
    assert [len(v) for v in vals] == problem.d
    assert problem.counter.rows == n * s
    assert problem.counter.calls == n * calls_per_image


def test_counter_sees_ours(problem):
    """Ours evaluates each distinct coalition once per image (the full coalition is the
    explained image itself), within the budget."""
    s, n = TINY3["samples"], TINY3["n_images"]
    problem.counter.reset()
    _contender("xai lime").run(problem, s, 0)
    assert n <= problem.counter.rows <= n * s
    # every counted row went through the wrapped module: forwarding that many rows again
    # through a fresh counter counts the same
    c = CountingModule(problem.module)
    c(torch.as_tensor(problem.images).repeat(problem.counter.rows // n, 1, 1, 1))
    assert c.rows == problem.counter.rows - problem.counter.rows % n


def test_floor_counts(problem):
    c = CountingModule(problem.module)
    seconds, batch = images.floor_seconds(c, problem.images, 300, repeats=1)
    assert seconds > 0 and batch in images.FLOOR_BATCHES
    # a warm-up and one timed pass, for each batch size tried
    assert c.rows == 2 * len(images.FLOOR_BATCHES) * 300
    assert c.calls == 2 * sum(-(-300 // b) for b in images.FLOOR_BATCHES)


def test_gradient_floor_counts(cache):
    p = gradients.load_gradient_problem(cache_dir=cache, log=lambda *a: None, **TINY4)
    n, steps = TINY4["n_images"], TINY4["n_steps"]
    p.module = CountingModule(p.module)
    gradients.floor_seconds(p, steps, repeats=2)
    assert p.module.rows == 3 * steps * n and p.module.calls == 3 * steps
    p.module.reset()
    gradients.floor_seconds(p, steps, repeats=1, one_pass=True)
    assert p.module.rows == 2 * steps * n and p.module.calls == 2


def test_reference_equals_exact_shapley(problem, tmp_path):
    assert max(problem.d) <= 12  # 2^d coalitions: the reference budget covers them all
    refs = images.references(problem, TINY3["reference_budget"], tmp_path)
    for i in range(len(problem.d)):
        np.testing.assert_allclose(refs["shapley"][i], images.exact_shapley_images(problem, i),
                                   atol=1e-6)
    # cached: the second call reads the file
    again = images.references(problem, TINY3["reference_budget"], tmp_path)
    assert len(list(tmp_path.glob("p3_reference_*.npz"))) == 1
    for a, b in zip(refs["lime"], again["lime"]):
        np.testing.assert_array_equal(a, b)


def test_lime_reference_is_lime_estimand(problem):
    """The LIME reference (xai) and the lime package at many samples estimate one surrogate."""
    refs = images.references(problem, 4096)
    lime_many = _contender("lime LimeImageExplainer (batch_size=samples)").run(problem, 4096, 1)
    assert images.relative_error(lime_many, refs["lime"]) < 0.1


def test_relative_error():
    ref = [np.array([3.0, 4.0]), np.array([1.0, 0.0])]
    assert images.relative_error(ref, ref) == 0
    assert images.relative_error([np.zeros(2), np.array([1.0, 1.0])], ref) == \
        pytest.approx((1 + 1) / 2)


def test_completeness_gap_linear_model_is_zero():
    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3)).double()
    for q in lin.parameters():
        q.requires_grad_(False)
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 0, 1])
    exact = (lin[1].weight[t].reshape(5, 3, 4, 4) * x).numpy()  # IG of a linear model
    gap, delta = gradients.completeness_gap(lin, x, exact, t)
    assert gap.max() < 1e-12 and delta.min() > 0
    p = gradients.GradientProblem(lin, CountingModule(lin), x, t)
    for c in gradients.contenders():
        vals = c.run(p, 7)
        np.testing.assert_allclose(vals, exact, atol=1e-10)
        assert gradients.completeness_gap(lin, x, vals, t)[0].max() < 1e-10
    # a wrong attribution has a gap
    assert gradients.completeness_gap(lin, x, exact * 0.5, t)[0].max() > 1e-3


def test_gradient_contenders_count_rows(cache):
    p = gradients.load_gradient_problem(cache_dir=cache, log=lambda *a: None, **TINY4)
    n, steps = TINY4["n_images"], TINY4["n_steps"]
    for c in gradients.contenders():
        p.counter.reset()
        c.run(p, steps)
        # targets (f(x), reused for the convergence delta), f(baseline), the output probe and
        # the one-row channels-last probe
        extra = 0 if not c.ours else n + 1 + 1 + 1
        assert p.counter.rows == n * steps + extra, c.name


def test_run_problems_write_files(tmp_path, cache):
    from benchmarks.performance.common import environment

    env = environment()
    r3 = images.run_problem(tmp_path, TINY3, cache_dir=cache, log=lambda *a: None, env=env)
    r4 = gradients.run_problem(tmp_path, TINY4, cache_dir=cache, log=lambda *a: None, env=env)
    for name, res, mod in (("problem3", r3, images), ("problem4", r4, gradients)):
        data = json.loads((tmp_path / f"{name}.json").read_text())
        md = (tmp_path / f"{name}.md").read_text()
        names = [c.name for c in mod.contenders()]
        assert [r["contender"] for r in data["rows"]] == names
        assert all(r["status"] == "ok" for r in res["rows"]), res["rows"]
        for n in names:
            assert sum(line.startswith((f"| {n} |", f"| **{n}** |"))
                       for line in md.splitlines()) == 1, n
        assert "environment" in data
    assert {t["estimand"] for t in r3["targets_met"]} == {"lime", "shapley"}
    assert r4["target"]["ours"].startswith("xai")
