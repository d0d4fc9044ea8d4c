"""Global importance on the 2-D suppressor problem against the closed forms of
Wilming, Kieslich, Clark & Haufe 2023, within a Monte-Carlo tolerance (z = 3 standard errors,
small slack, non-vacuous bands, negative controls): permutation importance gives the
suppressor 2 w_2^2 Var(x_2) (ratio c^2 s1^2 / (1 + s1^2) = 0.2498) while SAGE on the
squared-error game gives it exactly w_2 Cov(x_2, z) = 0."""

from __future__ import annotations

import numpy as np
import pytest

import xai

Z, EPS = 3.0, 0.004


@pytest.fixture(scope="module")
def problem():
    data = xai.datasets.make("gauss2d-suppressor", 0, n=20000)
    w = np.asarray(data.extras["w_ls"], dtype=np.float64)  # least-squares model of z on x
    X = data.X.astype(np.float64)
    z = 2.0 * data.y - 1.0
    return data, w, X, z


def test_permutation_importance_ratio_matches_closed_form(problem):
    data, w, X, z = problem
    e = xai.explain(lambda A: A @ w, X, method="permutation-importance", y=z, n_repeats=5,
                    seed=0, progress=False)
    (a1, a2), (s1, s2) = e.values[0], e.stderr[0]
    ratio = a2 / a1
    se = abs(ratio) * np.hypot(s1 / a1, s2 / a2)  # delta method over the repeats
    theta, theta_alt = data.reference["pfi_mse"], data.reference["pfi_accuracy"]
    assert abs(theta - 0.2498) < 1e-3
    assert Z * se + EPS < abs(theta - theta_alt) / 2  # the band tells PFI-MSE from PFI-acc
    assert abs(ratio - theta) <= Z * se + EPS, (ratio, se)
    assert abs(ratio - theta_alt) > Z * se + EPS  # negative control


def test_sage_on_the_squared_error_game_gives_the_suppressor_zero(problem):
    data, w, X, z = problem
    background = X[-200:]
    ratios = []
    for part in np.array_split(np.arange(16000), 4):  # four disjoint data sets: an SE
        e = xai.Explainer("marginal", "dataset-loss", "exact-shapley", background=background,
                          max_background=None, loss="squared-error").explain(
            lambda A: A @ w, X[part], z[part])
        ratios.append(e.values[0, 1] / e.values[0, 0])
    ratio, se = np.mean(ratios), np.std(ratios, ddof=1) / 2
    assert data.reference["sage_mse_ls"] == 0.0
    assert Z * se + EPS < data.reference["pfi_mse"] / 2  # tells SAGE from PFI
    assert abs(ratio) <= Z * se + EPS, (ratio, se)
    assert abs(ratio - data.reference["pfi_mse"]) > Z * se + EPS  # negative control
