"""Tests of the result type (xai.explanation) and its plots (xai.plots)."""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from xai import plots
from xai.errors import InputError, TargetError, XaiError
from xai.explanation import FORMAT, Explanation


def tabular() -> Explanation:
    """A (5, 4) tabular explanation with every optional field filled."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 4))
    values[4, 3] = np.nan  # NaN padding
    return Explanation(
        values=values,
        stderr=np.abs(rng.normal(size=(5, 4))) * 0.1,
        base_values=rng.normal(size=5),
        data=rng.normal(size=(5, 4)),
        feature_names=["age", "income", "height", "weight"],
        method="kernel_shap",
        removal={"name": "marginal", "background_rows": np.int64(100)},
        behaviour={"name": "prediction", "target": 1},
        summary={"name": "kernel", "paired": True, "tol": np.float32(0.5)},
        evaluations=1234,
        coalitions=np.array([10, 20, 30, 40, 50]),
        units=np.array([5, 10, 15, 20, 25]),
        converged=np.array([True, False, True, True, False]),
        seconds=0.25,
        options={"seed": np.int64(3), "budget": 2048, "shape": (2, 3), "none": None},
        extras={"importances": rng.normal(size=(3, 5, 4))},
    )


def multi_output() -> Explanation:
    """A (5, 4, 3) explanation with named outputs."""
    rng = np.random.default_rng(1)
    return Explanation(
        values=rng.normal(size=(5, 4, 3)),
        stderr=None,
        base_values=rng.normal(size=(5, 3)),
        data=rng.normal(size=(5, 4)),
        output_names=["a", "b", "c"],
        method="exact",
    )


def image_expl(with_data: bool = True) -> Explanation:
    """Two (3, 16, 16) images with per-explicand maps of four 8x8 patches."""
    rng = np.random.default_rng(2)
    patch = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 8, axis=0), 8, axis=1)
    fmap = np.stack([patch, 3 - patch])
    fmap[1, 0, 0] = -1  # an always-kept position
    return Explanation(
        values=rng.normal(size=(2, 4)),
        stderr=np.zeros((2, 4)),
        base_values=np.array([0.1, 0.2]),
        data=rng.uniform(size=(2, 3, 16, 16)) if with_data else None,
        feature_map=fmap,
        channel_axis=0,
        method="occlusion",
    )


ALL = [tabular, multi_output, image_expl]


def assert_same(a: Explanation, b: Explanation) -> None:
    """Every field of ``a`` and ``b`` is equal (arrays compared with numpy, NaN == NaN)."""
    for f in dataclasses.fields(Explanation):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "extras":
            assert sorted(x) == sorted(y)
            for key in x:
                np.testing.assert_array_equal(x[key], y[key])
                assert x[key].dtype == y[key].dtype
        elif isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert isinstance(x, np.ndarray) and isinstance(y, np.ndarray), f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
            assert x.dtype == y.dtype, f.name
        else:
            assert x == y, f.name


@pytest.mark.parametrize("make", ALL)
def test_save_load_round_trip(make, tmp_path):
    expl = make()
    path = expl.save(tmp_path / "expl.npz")
    loaded = Explanation.load(path)
    expected = dataclasses.replace(expl)
    # JSON turns numpy scalars into Python numbers and tuples into lists.
    if expl.options:
        expected.options = {"seed": 3, "budget": 2048, "shape": [2, 3], "none": None}
        expected.removal = {"name": "marginal", "background_rows": 100}
        expected.summary = {"name": "kernel", "paired": True, "tol": 0.5}
    assert_same(loaded, expected)
    if expl.options:
        assert type(loaded.options["seed"]) is int


def test_save_appends_suffix_and_file_is_pickle_free(tmp_path):
    path = tabular().save(tmp_path / "result")
    assert path.name == "result.npz" and path.exists()
    with np.load(path, allow_pickle=False) as npz:
        assert "extras/importances" in npz.files
        assert "values" in npz.files
        assert FORMAT in str(npz["__meta__"])


def test_load_rejects_foreign_files(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez_compressed(plain, values=np.zeros((2, 2)))
    with pytest.raises(XaiError, match="not an xai explanation"):
        Explanation.load(plain)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    with pytest.raises(XaiError, match="not an xai explanation"):
        Explanation.load(garbage)
    future = tmp_path / "future.npz"
    np.savez_compressed(future, __meta__=np.array('{"format": "xai.explanation/99"}'))
    with pytest.raises(XaiError, match="xai.explanation/99"):
        Explanation.load(future)


def test_save_rejects_object_arrays(tmp_path):
    expl = tabular()
    expl.data = np.array([["a", 1]] * 5, dtype=object)
    with pytest.raises(XaiError, match="dtype object"):
        expl.save(tmp_path / "x.npz")


def test_to_pandas_tabular():
    expl = tabular()
    frame = expl.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == expl.feature_names
    np.testing.assert_array_equal(frame.to_numpy(), expl.values)
    np.testing.assert_array_equal(expl.stderr_frame().to_numpy(), expl.stderr)
    assert expl.to_numpy() is expl.values


def test_to_pandas_multi_output():
    expl = multi_output()
    frame = expl.to_pandas()
    assert isinstance(frame.columns, pd.MultiIndex)
    assert frame.shape == (5, 12)
    assert frame.columns[0] == ("a", "feature_0")
    for k, out in enumerate(["a", "b", "c"]):
        np.testing.assert_array_equal(frame[out].to_numpy(), expl.values[:, :, k])
    with pytest.raises(XaiError, match="no standard errors"):
        expl.stderr_frame()


def test_indexing():
    expl = tabular()
    assert len(expl) == 5 and expl.shape == (5, 4)
    one = expl[2]
    assert len(one) == 1
    np.testing.assert_array_equal(one.values, expl.values[[2]])
    np.testing.assert_array_equal(one.base_values, expl.base_values[[2]])
    np.testing.assert_array_equal(one.converged, expl.converged[[2]])
    part = expl[1:4]
    assert part.shape == (3, 4)
    np.testing.assert_array_equal(part.data, expl.data[1:4])
    np.testing.assert_array_equal(part.coalitions, expl.coalitions[1:4])
    picked = expl[np.array([4, 0])]
    np.testing.assert_array_equal(picked.stderr, expl.stderr[[4, 0]])
    assert picked.feature_names == expl.feature_names and picked.method == expl.method
    assert expl[-1].values.shape == (1, 4)
    with pytest.raises(IndexError):
        expl[5]

    images = image_expl()
    second = images[1]
    assert second.feature_map.shape == (1, 16, 16)
    np.testing.assert_array_equal(second.feature_map[0], images.feature_map[1])
    shared = dataclasses.replace(images, feature_map=images.feature_map[:1])
    assert shared[1].feature_map.shape == (1, 16, 16)


def test_repr_and_validation():
    text = repr(tabular())
    assert "kernel_shap" in text and "(5, 4)" in text and "1234" in text
    with pytest.raises(InputError):
        Explanation(values=np.zeros((2, 3)), stderr=np.zeros((2, 2)), base_values=np.zeros(2))
    with pytest.raises(InputError):
        Explanation(values=np.zeros((2, 3)), stderr=None, base_values=np.zeros(3))
    with pytest.raises(InputError):
        Explanation(values=np.zeros(3), stderr=None, base_values=np.zeros(3))


@pytest.mark.parametrize("make", [tabular, multi_output, image_expl])
@pytest.mark.parametrize("kind", ["bar", "waterfall", "beeswarm"])
def test_plots_return_figures(make, kind):
    kwargs = {"output": 1} if make is multi_output else {}
    fig = getattr(make().plot, kind)(**kwargs)
    assert isinstance(fig, Figure) and len(fig.axes) >= 1
    fig.canvas.draw()


def test_plot_output_choice_and_title():
    expl = multi_output()
    with pytest.raises(TargetError, match="output="):  # never one of several, silently
        plots.bar(expl)
    assert "(b)" in plots.bar(expl, output="b").axes[0].get_title()
    fig = plots.waterfall(expl, row=1, output=2, max_display=2)
    assert "c" in fig.axes[0].get_title()
    assert any("other features" in t.get_text() for t in fig.axes[0].get_yticklabels())
    with pytest.raises(TargetError):
        plots.bar(expl, output=3)
    with pytest.raises(TargetError):
        plots.bar(tabular(), output=1)


def test_plots_on_given_axes():
    ax = Figure().add_subplot()
    assert plots.beeswarm(tabular(), ax=ax) is ax.figure
    assert len(ax.figure.axes) == 2  # the axes and its colorbar


def test_image_plot():
    expl = image_expl()
    fig = expl.plot.image(row=1)
    assert isinstance(fig, Figure) and len(fig.axes) >= 2
    fig.canvas.draw()
    # channels-last and grayscale images
    hwc = dataclasses.replace(expl, data=np.moveaxis(expl.data, 1, -1), channel_axis=-1)
    assert isinstance(plots.image(hwc), Figure)
    gray = dataclasses.replace(expl, data=expl.data[:, 0], channel_axis=None)
    assert isinstance(plots.image(gray, alpha=0.3, cmap="coolwarm"), Figure)


def test_image_plot_needs_data_and_map():
    with pytest.raises(InputError, match="data"):
        image_expl(with_data=False).plot.image()
    with pytest.raises(InputError, match="feature map"):
        tabular().plot.image()
