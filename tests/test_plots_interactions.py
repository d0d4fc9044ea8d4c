"""The interaction plots (xai.plots.interactions) draw the explanation's own numbers: heatmap
cells, diagonal main effects, edges kept by a threshold or top-k, node sizes and colours."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgba

import xai
from xai import plots
from xai.errors import InputError, MissingInteractions, TargetError
from xai.plots._common import NEGATIVE, POSITIVE

D = 5
NAMES = [f"f{j}" for j in range(D)]


def quadratic() -> tuple[xai.Explanation, np.ndarray, np.ndarray]:
    """k-SII of ``x'Wx`` with baseline 0 on two rows: pairs ``(W + W') x_i x_j`` exactly."""
    rng = np.random.default_rng(0)
    W = np.triu(rng.normal(size=(D, D)))
    X = rng.normal(size=(2, D))
    e = xai.Explainer(removal="baseline", summary="shap-interactions",
                      baseline=np.zeros(D)).explain(
        lambda Z: np.einsum("ni,ij,nj->n", Z, W, Z), X, output_kind="raw")
    e.feature_names = NAMES
    return e, X, W


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_heatmap_cells_are_the_pairs_and_the_diagonal_the_main_effects():
    e, X, W = quadratic()
    fig = plots.interaction_heatmap(e, row=1)
    ax = fig.axes[0]
    cells = np.asarray(ax.images[0].get_array())
    expected = (W + W.T) * X[1][:, None] * X[1][None, :]
    np.fill_diagonal(expected, np.diagonal(W) * X[1] ** 2)
    np.testing.assert_allclose(cells, expected, atol=1e-12)
    np.testing.assert_allclose(np.diagonal(cells), e.values[1])
    norm = ax.images[0].norm
    assert norm.vmin == -norm.vmax
    assert norm.vmax == pytest.approx(np.abs(expected).max(), rel=1e-12)
    assert ax.images[0].get_cmap().name == "RdBu_r"
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert len(ax.texts) == D * D  # annotated at this size
    assert "row 1" in ax.get_title()


def test_heatmap_of_several_rows_is_the_mean_absolute_value():
    e, _, _ = quadratic()
    cells = np.asarray(e.plot.interaction_heatmap().axes[0].images[0].get_array())
    expected = np.abs(e.interactions).mean(0)
    np.fill_diagonal(expected, np.abs(e.values).mean(0))
    np.testing.assert_allclose(cells, expected, atol=1e-12)


def test_heatmap_keeps_the_strongest_features_in_their_order():
    e, _, _ = quadratic()
    one = e[0]
    weight = np.abs(one.values[0]) + np.abs(one.interactions[0]).sum(1)
    keep = np.sort(np.argsort(-weight)[:3])
    ax = plots.interaction_heatmap(one, max_display=3, annotate=False).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [NAMES[j] for j in keep]
    assert not ax.texts
    np.testing.assert_allclose(np.asarray(ax.images[0].get_array())[0, 1],
                               one.interactions[0, keep[0], keep[1]])


def test_network_edges_follow_threshold_and_top_k():
    e, _, _ = quadratic()
    pairs = e.interactions[0][np.triu_indices(D, 1)]
    threshold = float(np.median(np.abs(pairs)))
    ax = plots.interaction_network(e, row=0, threshold=threshold, top_k=None).axes[0]
    edges = next(c for c in ax.collections if isinstance(c, LineCollection))
    assert len(edges.get_segments()) == int((np.abs(pairs) >= threshold).sum())
    strongest = np.sort(np.abs(pairs))[::-1]
    ax = plots.interaction_network(e, row=0, top_k=3).axes[0]
    edges = next(c for c in ax.collections if isinstance(c, LineCollection))
    assert len(edges.get_segments()) == 3
    widths = np.sort(edges.get_linewidths())[::-1]
    np.testing.assert_allclose(widths, 0.5 + 5.5 * strongest[:3] / strongest[0])


def test_network_colours_edges_and_nodes_by_sign_and_sizes_nodes_by_main_effect():
    e, _, _ = quadratic()
    ax = plots.interaction_network(e, row=0, top_k=None).axes[0]
    edges = next(c for c in ax.collections if isinstance(c, LineCollection))
    i, j = np.triu_indices(D, 1)
    pairs = e.interactions[0][i, j]
    drawn = pairs[pairs != 0][np.argsort(-np.abs(pairs[pairs != 0]), kind="stable")][::-1]
    want = [to_rgba(POSITIVE if p > 0 else NEGATIVE, 0.75) for p in drawn]
    np.testing.assert_allclose(edges.get_colors(), want)
    nodes = next(c for c in ax.collections if isinstance(c, PathCollection))
    main = np.abs(e.values[0])
    np.testing.assert_allclose(nodes.get_sizes(), 60 + 1200 * main / main.max())
    assert [t.get_text() for t in ax.texts] == NAMES


def test_plots_refuse_an_explanation_without_interactions():
    rng = np.random.default_rng(1)
    e = xai.explain(lambda Z: Z.sum(1), rng.normal(size=(2, 3)), "exact-shap",
                    background=np.zeros((1, 3)), output_kind="raw")
    for plot in (plots.interaction_heatmap, plots.interaction_network):
        with pytest.raises(MissingInteractions, match="shap-interactions"):
            plot(e)


def test_several_outputs_need_output_and_draw_the_chosen_one():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1, 4))
    e = xai.Explainer(removal="baseline", summary="shap-interactions", baseline=np.zeros(4),
                      target="all").explain(
        lambda Z: np.stack([Z[:, 0] * Z[:, 1], -2 * Z[:, 2] * Z[:, 3]], 1), X,
        output_kind="raw")
    with pytest.raises(TargetError):
        plots.interaction_heatmap(e)
    cells = np.asarray(plots.interaction_heatmap(e, output=1).axes[0].images[0].get_array())
    np.testing.assert_allclose(cells[2, 3], -2 * X[0, 2] * X[0, 3], atol=1e-12)
    assert cells[0, 1] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kwargs", [{"threshold": -1.0}, {"top_k": 1.5}, {"max_display": 1},
                                    {"row": 5}])
def test_bad_plot_arguments_get_named_errors(kwargs):
    e, _, _ = quadratic()
    with pytest.raises(InputError):
        plots.interaction_network(e, **kwargs)
