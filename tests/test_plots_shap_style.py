"""Tests of the shap-style plots (xai.plots): the numbers drawn are the explanation's, signed
colours are centred at zero, figures live in pyplot, titles name the method, and bad arguments
get named errors."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

import xai
from xai import plots
from xai.errors import InputError, TargetError, UnknownNameError
from xai.explanation import Explanation


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X = X.copy()
    return LinearRegression().fit(X, y), X, np.array(y)


@pytest.fixture(scope="module")
def exact(diabetes):
    """Exact Shapley values of a real regression model for 8 rows (d = 10)."""
    model, X, _ = diabetes
    return xai.explain(model, X.iloc[:8], method="exact-shap", background=X.iloc[:20],
                       progress=False)


def multi_output() -> Explanation:
    rng = np.random.default_rng(1)
    return Explanation(values=rng.normal(size=(6, 4, 3)), stderr=None,
                       base_values=rng.normal(size=(6, 3)), data=rng.normal(size=(6, 4)),
                       feature_names=["a", "b", "c", "d"], output_names=["x", "y", "z"],
                       method="exact-shap")


def image_expl(summary: str = "kernelshap", offset: float = 0.0) -> Explanation:
    """Two (1, 8, 8) images with four 4x4 patches; values shifted by ``offset``."""
    rng = np.random.default_rng(2)
    patch = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 4, axis=0), 4, axis=1)
    return Explanation(values=offset + rng.normal(scale=0.1, size=(2, 4)), stderr=None,
                       base_values=np.zeros(2), data=rng.uniform(size=(2, 1, 8, 8)),
                       feature_map=patch[None], channel_axis=0, method="custom",
                       removal={"name": "baseline"}, behaviour={"name": "prediction"},
                       summary={"name": summary})


def _overlay(fig):
    """The attribution layer of an image plot (the image drawn with a diverging map)."""
    return next(im for ax in fig.axes for im in ax.get_images()
                if im.get_cmap().name == plots._common.DIVERGING)


def _heat(fig):
    """The image of a heatmap figure."""
    return next(im for ax in fig.axes for im in ax.get_images())


def _symmetric(norm) -> bool:
    return norm.vmin == -norm.vmax and norm.vmax > 0


# ------------------------------------------------------------------ numbers drawn

def test_bar_heights_are_mean_absolute_values_largest_first(exact):
    fig = plots.bar(exact, max_display=20)
    widths = [p.get_width() for p in fig.axes[0].patches]
    expected = np.sort(np.abs(exact.values).mean(axis=0))[::-1]
    np.testing.assert_allclose(widths, expected)
    assert "over 8 rows" in fig.axes[0].get_title()


def test_bar_of_one_row_is_signed_and_other_features_are_summed(exact):
    fig = plots.bar(exact[2], max_display=4)
    widths = [p.get_width() for p in fig.axes[0].patches]
    v = exact.values[2]
    order = np.argsort(-np.abs(v), kind="stable")
    np.testing.assert_allclose(widths, list(v[order[:3]]) + [v[order[3:]].sum()])
    assert fig.axes[0].get_yticklabels()[-1].get_text() == "7 other features"


def test_global_bar_says_global_importance_not_one_row(diabetes):
    model, X, y = diabetes
    e = xai.explain(model, X.iloc[:60], method="permutation-importance", y=y[:60], seed=0,
                    progress=False)
    ax = plots.bar(e).axes[0]
    assert "global importance" in ax.get_title() and "1 rows" not in ax.get_title()
    np.testing.assert_allclose(sorted(p.get_width() for p in ax.patches),
                               np.sort(e.values[0]))


def test_heatmap_draws_the_values_in_the_plotted_order(exact):
    values = exact.values
    fx = exact.base_values + values.sum(axis=1)
    order = np.argsort(-np.abs(values).mean(axis=0), kind="stable")
    fig = plots.heatmap(exact, max_display=4, instance_order="output")
    image = _heat(fig)
    rows = np.argsort(-fx, kind="stable")
    expected = np.vstack([values[rows][:, order[:3]].T, values[rows][:, order[3:]].sum(1)])
    np.testing.assert_allclose(image.get_array(), expected)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), fx[rows])
    assert _symmetric(image.norm)
    assert image.norm.vmax == pytest.approx(np.abs(expected).max())


def test_heatmap_orders_rows_by_similarity_or_a_given_permutation(exact):
    table = _heat(plots.heatmap(exact, max_display=20)).get_array()
    order = np.argsort(-np.abs(exact.values).mean(axis=0), kind="stable")
    columns = exact.values[:, order]
    drawn = [tuple(np.round(c, 12)) for c in np.asarray(table).T]
    assert sorted(drawn) == sorted(tuple(np.round(c, 12)) for c in columns)
    perm = np.array([3, 1, 0, 2, 7, 6, 5, 4])
    given = plots.heatmap(exact, max_display=20, instance_order=perm)
    np.testing.assert_allclose(_heat(given).get_array(), columns[perm].T)


@pytest.mark.parametrize("n", [40, 2400])  # clustered, and ordered along a principal axis
def test_similarity_order_puts_rows_explained_alike_together(n):
    rng = np.random.default_rng(0)
    group = np.arange(n) % 2  # two interleaved groups with opposite attributions
    values = np.where(group[:, None] == 1, 1.0, -1.0) * [3.0, 2.0, 1.0] \
        + rng.normal(scale=0.1, size=(n, 3))
    expl = Explanation(values=values, stderr=None, base_values=np.zeros(n))
    drawn = np.asarray(_heat(plots.heatmap(expl)).get_array())[0]  # first feature per column
    sides = (drawn > 0).astype(int)
    assert np.count_nonzero(np.diff(sides)) == 1  # one block of each group
    np.testing.assert_allclose(np.sort(drawn), np.sort(values[:, 0]))


def test_scatter_points_are_feature_values_and_attributions(exact):
    j, c = exact.names.index("bmi"), exact.names.index("s5")
    fig = exact.plot.scatter("bmi", color="s5")
    points = fig.axes[0].collections[0]
    np.testing.assert_allclose(points.get_offsets(),
                               np.column_stack([exact.data[:, j], exact.values[:, j]]))
    np.testing.assert_allclose(points.get_array(), exact.data[:, c])
    assert "bmi" in fig.axes[0].get_title() and "exact-shap" in fig.axes[0].get_title()
    by_index = plots.scatter(exact, j).axes[0].collections[0]
    np.testing.assert_allclose(by_index.get_offsets(), points.get_offsets())


def test_scatter_places_categories_at_their_codes_in_their_own_order():
    codes = np.array([[2, 0.5], [0, 1.5], [1, 2.5], [2, 3.5]])
    expl = Explanation(values=np.array([[1.0, 0.1], [-1.0, 0.2], [0.0, 0.3], [1.2, 0.4]]),
                       stderr=None, base_values=np.zeros(4), data=codes,
                       feature_names=["size", "weight"],
                       options={"categories": {"size": ["S", "M", "L"]}})
    ax = plots.scatter(expl, "size", color="size").axes[0]
    np.testing.assert_allclose(ax.collections[0].get_offsets(),
                               np.column_stack([codes[:, 0], expl.values[:, 0]]))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["S", "M", "L"]


def test_decision_lines_go_from_base_to_model_output(diabetes, exact):
    model, X, _ = diabetes
    fig = plots.decision(exact, max_display=5)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(lines) == len(exact)
    values = exact.values
    order = np.argsort(-np.abs(values).mean(axis=0), kind="stable")
    steps = np.hstack([values[:, order[4:]].sum(1, keepdims=True), values[:, order[:4][::-1]]])
    for r, line in enumerate(lines):
        path = exact.base_values[r] + np.concatenate([[0.0], np.cumsum(steps[r])])
        np.testing.assert_allclose(line.get_xdata(), path)
        np.testing.assert_allclose(line.get_ydata(), np.arange(6))
    # efficiency of exact Shapley values: every line ends at the model's prediction
    np.testing.assert_allclose([line.get_xdata()[-1] for line in lines],
                               model.predict(X.iloc[:8]), rtol=1e-9)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "6 other features" and labels[-1] == exact.names[order[0]]
    # coloured by f(x) - base on a diverging map centred at zero with symmetric limits
    total = values.sum(axis=1)
    lim = np.abs(total).max()
    cmap = matplotlib.colormaps[plots._common.DIVERGING]
    for t, line in zip(total, lines):
        np.testing.assert_allclose(matplotlib.colors.to_rgba(line.get_color()),
                                   cmap((t + lim) / (2 * lim)))


def test_decision_of_chosen_rows_and_single_row_labels(exact):
    fig = plots.decision(exact, rows=[5, 1], max_display=20)
    ends = [line.get_xdata()[-1] for line in fig.axes[0].get_lines()
            if line.get_marker() == "o"]
    fx = exact.base_values + exact.values.sum(1)
    np.testing.assert_allclose(ends, fx[[5, 1]])
    labels = [t.get_text() for t in plots.decision(exact, rows=0).axes[0].get_yticklabels()]
    assert all(" = " in label for label in labels)


# ------------------------------------------------------------------ colours centred at 0

def test_image_overlay_is_centred_at_zero():
    expl = image_expl(offset=0.05)
    overlay = _overlay(plots.image(expl, row=1))
    assert _symmetric(overlay.norm)
    assert overlay.norm.vmax == pytest.approx(np.abs(expl.values[1]).max())


def test_rise_overlay_shows_deviations_from_the_row_mean():
    expl = image_expl(summary="rise", offset=0.5)  # every score near 0.5: one colour at 0
    fig = plots.image(expl, row=0)
    heat = np.asarray(_overlay(fig).get_array())
    assert heat.min() < 0 < heat.max()
    np.testing.assert_allclose(np.sort(np.unique(heat)),
                               np.sort(expl.values[0] - expl.values[0].mean()))
    assert _symmetric(_overlay(fig).norm)
    assert "minus its mean" in fig.axes[1].get_title()
    raw = np.asarray(_overlay(plots.image(expl, row=0, reference=0)).get_array())
    assert raw.min() > 0


# ------------------------------------------------------------------ pyplot and titles

@pytest.mark.parametrize("kind", ["bar", "beeswarm", "heatmap", "waterfall", "decision"])
def test_figures_are_registered_in_pyplot(exact, kind):
    fig = getattr(exact.plot, kind)()
    assert fig.canvas.manager is not None and fig.number in plt.get_fignums()
    assert "exact-shap" in fig.axes[0].get_title()
    plt.close(fig)
    assert fig.number not in plt.get_fignums()


def test_scatter_and_image_figures_are_registered_in_pyplot(exact):
    for fig in (exact.plot.scatter("bmi"), image_expl().plot.image()):
        assert fig.canvas.manager is not None and fig.number in plt.get_fignums()


def test_plots_on_given_axes_make_no_new_figure(exact):
    fig, ax = plt.subplots()
    before = plt.get_fignums()
    assert plots.heatmap(exact, ax=ax) is fig
    assert plots.decision(exact, ax=ax) is fig
    assert plots.scatter(exact, "bmi", ax=ax) is fig
    assert plt.get_fignums() == before


def test_titles_name_the_axes_of_a_custom_explainer():
    fig = image_expl().plot.image()
    title = fig.axes[1].get_title()
    assert "kernelshap" in title and "custom" not in title


def test_demo_style_loop_leaks_no_figures(exact, tmp_path):
    from xai.demo import _save_fig

    files: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "More than 20 figures have been opened" included
        for i in range(21):
            _save_fig(exact.plot.bar(max_display=2), tmp_path / f"d{i}.png", files, tmp_path)
    assert plt.get_fignums() == [] and len(files) == 21


# ------------------------------------------------------------------ named errors

def test_multi_output_needs_output_and_accepts_a_name():
    expl = multi_output()
    for plot in (plots.bar, plots.beeswarm, plots.heatmap, plots.decision, plots.waterfall):
        with pytest.raises(TargetError, match="output="):
            plot(expl)
    by_name = plots.heatmap(expl, output="y", instance_order="index")
    np.testing.assert_allclose(
        _heat(by_name).get_array()[0],
        expl.values[:, np.argmax(np.abs(expl.values[:, :, 1]).mean(0)), 1])
    assert "(y)" in by_name.axes[0].get_title()
    with pytest.raises(UnknownNameError, match="'y'"):
        plots.bar(expl, output="why")
    with pytest.raises(TargetError):
        plots.bar(expl, output=3)


def test_bad_arguments_get_named_errors(exact):
    with pytest.raises(UnknownNameError, match="bmi"):
        plots.scatter(exact, "bmii")
    with pytest.raises(UnknownNameError):
        plots.scatter(exact, "bmi", color="nope")
    with pytest.raises(InputError, match="feature=42"):
        plots.scatter(exact, 42)
    with pytest.raises(InputError, match="row=8"):
        plots.waterfall(exact, row=8)
    with pytest.raises(InputError, match="row=-9"):
        plots.decision(exact, rows=[0, -9])
    with pytest.raises(InputError, match="max_display"):
        plots.bar(exact, max_display=0)
    with pytest.raises(InputError, match="instance_order"):
        plots.heatmap(exact, instance_order="random")
    with pytest.raises(InputError, match="permutation"):
        plots.heatmap(exact, instance_order=[0, 0, 1, 2, 3, 4, 5, 6])
    with pytest.raises(InputError, match="reference"):
        plots.image(image_expl(), reference="median")


def test_scatter_without_tabular_data_says_what_is_missing(exact):
    no_data = exact[:]
    no_data.data = None
    with pytest.raises(InputError, match="no tabular data"):
        plots.scatter(no_data, "bmi")
    with pytest.raises(InputError, match="no tabular data"):
        plots.scatter(image_expl(), 0)
