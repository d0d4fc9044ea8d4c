"""Indexing explanations by rows, features and outputs (xai.indexing), and output names."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import xai
from xai.errors import IndexingError, InputError, UnknownLabelError
from xai.explanation import Explanation

NAMES = ["age", "income", "height", "weight", "score"]


def tabular(k: int | None = None) -> Explanation:
    """Six rows over five named features (``k`` named outputs when given), every row array
    filled, and a per-explicand removal array."""
    rng = np.random.default_rng(0)
    tail = () if k is None else (k,)
    return Explanation(
        values=rng.normal(size=(6, 5, *tail)),
        stderr=rng.uniform(size=(6, 5, *tail)),
        base_values=rng.normal(size=(6, *tail)),
        data=rng.normal(size=(6, 5)),
        feature_names=NAMES,
        output_names=None if k is None else ["cat", "dog", "eel"][:k],
        coalitions=np.arange(6), units=np.arange(6) * 2, converged=np.arange(6) % 2 == 0,
        removal_record={"name": "baseline", "params": {}, "per_explicand": ["value"]},
        removal_arrays={"value": rng.normal(size=(6, 5))},
        extras={"importances": rng.normal(size=(3, 6, 5))},
        method="exact",
    )


def images() -> Explanation:
    """Two (1, 4, 4) images with four 2x2 patches each (per-explicand maps)."""
    patch = np.repeat(np.repeat(np.arange(4).reshape(2, 2), 2, 0), 2, 1)
    fmap = np.stack([patch, 3 - patch])
    fmap[1, 0, 0] = -1
    return Explanation(values=np.arange(8.0).reshape(2, 4), stderr=None,
                       base_values=np.zeros(2), data=np.ones((2, 1, 4, 4)),
                       feature_map=fmap, channel_axis=0)


@pytest.mark.parametrize("key, cols", [
    ("income", [1]), (["weight", "age"], [3, 0]), (3, [3]), (-1, [4]), (slice(2, 4), [2, 3]),
    (slice("income", "weight"), [1, 2, 3]), (np.array([True, False, False, True, False]), [0, 3]),
    ([4, "age"], [4, 0]),
])
def test_features_by_position_name_slice_and_mask(key, cols):
    e = tabular()
    part = e[:, key]
    assert part.feature_names == [NAMES[j] for j in cols]
    np.testing.assert_array_equal(part.values, e.values[:, cols])
    np.testing.assert_array_equal(part.stderr, e.stderr[:, cols])
    np.testing.assert_array_equal(part.data, e.data[:, cols])  # data columns follow features
    np.testing.assert_array_equal(part.base_values, e.base_values)


def test_row_and_feature_together_keep_both_axes():
    e = tabular()
    one = e[2, "height"]
    assert one.shape == (1, 1)
    assert one.values[0, 0] == e.values[2, 2] and one.data[0, 0] == e.data[2, 2]
    np.testing.assert_array_equal(one.converged, e.converged[[2]])
    np.testing.assert_array_equal(one.removal_arrays["value"], e.removal_arrays["value"][[2]])
    np.testing.assert_array_equal(one.extras["importances"], e.extras["importances"])
    rows = e[[0, 5], ["age"]]
    np.testing.assert_array_equal(rows.values, e.values[[0, 5]][:, [0]])
    np.testing.assert_array_equal(rows.coalitions, [0, 5])


@pytest.mark.parametrize("key", [(..., "dog"), (slice(None), slice(None), "dog"), (..., 1),
                                 (slice(None), slice(None), -2)])
def test_one_output_drops_the_output_axis_and_records_it(key):
    e = tabular(k=3)
    one = e[key]
    assert one.shape == (6, 5)
    np.testing.assert_array_equal(one.values, e.values[:, :, 1])
    np.testing.assert_array_equal(one.stderr, e.stderr[:, :, 1])
    np.testing.assert_array_equal(one.base_values, e.base_values[:, 1])
    np.testing.assert_array_equal(one.extras["target"], np.ones(6, int))
    assert one.output_names == ["cat", "dog", "eel"]


def test_several_outputs_keep_the_output_axis():
    e = tabular(k=3)
    two = e[1:3, "age", ["eel", "cat"]]
    assert two.shape == (2, 1, 2) and two.output_names == ["eel", "cat"]
    np.testing.assert_array_equal(two.values, e.values[1:3][:, [0]][:, :, [2, 0]])
    np.testing.assert_array_equal(two.base_values, e.base_values[1:3][:, [2, 0]])
    assert "target" not in two.extras


def test_selected_rows_of_an_output_keep_their_target():
    one = tabular(k=3)[..., "eel"][[1, 4], :2]
    np.testing.assert_array_equal(one.extras["target"], [2, 2])
    assert one.shape == (2, 2)


def test_unknown_names_list_close_names():
    e = tabular(k=3)
    with pytest.raises(UnknownLabelError, match="'income'") as info:
        e[:, "incme"]
    assert isinstance(info.value, KeyError) and isinstance(info.value, InputError)
    assert "incme" in str(info.value) and not str(info.value).startswith('"')
    with pytest.raises(UnknownLabelError, match="Close names: 'dog'"):
        e[..., "dogs"]
    with pytest.raises(UnknownLabelError):
        e[:, slice("age", "nope")]


def test_bad_positions_and_index_shapes_raise_indexing_errors():
    e = tabular()
    for key in [(slice(None), 5), 6, (0, 0, 0), (..., 0, ...), (slice(None), np.zeros((2, 2)))]:
        with pytest.raises(IndexingError):
            e[key]
    with pytest.raises(IndexError, match="one output"):
        e[:, :, 0]
    with pytest.raises(IndexingError, match="by position"):
        e["age"]
    with pytest.raises(IndexingError, match="5 entries"):
        e[:, [True, False]]


def test_feature_slices_of_images_renumber_the_feature_map():
    e = images()
    part = e[:, [3, 1]]
    np.testing.assert_array_equal(part.values, e.values[:, [3, 1]])
    np.testing.assert_array_equal(part.data, e.data)  # the pixels stay
    fmap = e.feature_map
    expected = np.where(fmap == 3, 0, np.where(fmap == 1, 1, -1))
    np.testing.assert_array_equal(part.feature_map, expected)
    fig = part.plot.image(row=1)
    assert fig.axes
    plt.close(fig)


# ------------------------------------------------------------- outputs named by classes_


def _breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X[:, :4], np.where(y == 1, "benign", "malignant")


@pytest.mark.parametrize("pipeline", [False, True])
def test_binary_classifier_outputs_are_named_by_classes(pipeline):
    X, y = _breast_cancer()
    clf = LogisticRegression(max_iter=5000)
    model = (make_pipeline(StandardScaler(), clf) if pipeline else clf).fit(X, y)
    e = xai.explain(model, X[:3], "shap", background=X[:20], target="all", progress=False)
    assert e.output_names == [str(c) for c in model.classes_] == ["benign", "malignant"]
    # the output picked by name equals the explanation of that target
    one = xai.explain(model, X[:3], "shap", background=X[:20], target=1, progress=False)
    np.testing.assert_allclose(e[..., "malignant"].values, one.values, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(e[..., "malignant"].base_values, one.base_values, atol=1e-12)
    np.testing.assert_array_equal(e[..., "malignant"].extras["target"], one.extras["target"])


def test_multiclass_pipeline_outputs_are_named_by_classes():
    X, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    e = xai.explain(model, X[:2], "shap", background=X[:15], target="all", progress=False)
    assert e.shape == (2, 4, 3) and e.output_names == ["0", "1", "2"]
    assert e[..., "2"].shape == (2, 4)


def test_torch_model_outputs_keep_positional_names():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2)).double()
    X = np.random.default_rng(0).normal(size=(2, 3))
    e = xai.explain(net, X, "shap", background=X, target="all", output_kind="logits",
                    progress=False)
    assert e.output_names is None and e.outputs == ["output_0", "output_1"]
    np.testing.assert_array_equal(e[..., "output_1"].values, e.values[:, :, 1])


def test_selections_save_and_load(tmp_path):
    for part in (tabular(k=3)[1:3, ["age", "score"], "eel"], images()[:, [2]]):
        loaded = Explanation.load(part.save(tmp_path / "part.npz"))
        np.testing.assert_array_equal(loaded.values, part.values)
        np.testing.assert_array_equal(loaded.extras.get("target"), part.extras.get("target"))
        assert loaded.feature_names == part.feature_names
        if part.feature_map is not None:
            np.testing.assert_array_equal(loaded.feature_map, part.feature_map)
