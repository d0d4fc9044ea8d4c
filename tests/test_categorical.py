"""DataFrames with text, category and boolean columns are explained on their own columns: the
model only ever sees DataFrames of the original columns, dtypes and categories, removals that
take values of rows replace categories by categories, and removals that compute numbers are
refused before any model call."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import xai
from xai import InputError, ModelError
from xai.models import CALL_ROW_MULTIPLE, CallableModel
from xai.tabular import TableEncoding, columns_of

CATEGORICAL = ["colour", "size", "member"]
NUMERIC = ["age", "visits"]


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """A table with a text column, a pandas Categorical, a float, an int and a bool column."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "colour": pd.Series(rng.choice(["red", "green", "blue"], n), dtype="str"),
        "size": pd.Categorical(rng.choice(["S", "M", "L"], n), categories=["S", "M", "L"]),
        "age": rng.normal(40.0, 10.0, n),
        "visits": rng.integers(0, 10, n),
        "member": rng.random(n) > 0.5,
    })


class CheckedModel:
    """A fitted estimator that asserts that every batch it is asked about is a DataFrame with
    the training columns, dtypes and categories, and counts the rows."""

    def __init__(self, estimator, train: pd.DataFrame) -> None:
        self.estimator = estimator
        self.dtypes = dict(train.dtypes)
        self.categories = {c: set(train[c].astype(object)) for c in CATEGORICAL}
        self.classes_ = estimator.classes_
        self.feature_names_in_ = np.asarray(train.columns, dtype=object)
        self.n_features_in_ = train.shape[1]
        self.rows = 0

    def fit(self, X, y):  # pragma: no cover - fitted already
        return self

    def predict_proba(self, X):
        assert isinstance(X, pd.DataFrame), type(X)
        assert list(X.columns) == list(self.dtypes)
        assert dict(X.dtypes) == self.dtypes, dict(X.dtypes)
        for c in CATEGORICAL:
            unknown = set(X[c].astype(object)) - self.categories[c]
            assert not unknown, (c, unknown)
        self.rows += len(X)
        return self.estimator.predict_proba(X)


@pytest.fixture(scope="module")
def data():
    train = make_frame(300, 0)
    y = ((train.colour == "red").to_numpy() ^ (train["size"] == "L").to_numpy()
         ^ (train.age > 40).to_numpy() ^ train.member.to_numpy()).astype(int)
    encode = ColumnTransformer([("cat", OneHotEncoder(), CATEGORICAL),
                                ("num", StandardScaler(), NUMERIC)])
    pipe = make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(train, y)
    return train, y, pipe


def positive(pipe, frame: pd.DataFrame) -> np.ndarray:
    return pipe.predict_proba(frame)[:, 1]


def brute_force_shapley(pipe, X: pd.DataFrame, background: pd.DataFrame) -> np.ndarray:
    """Exact interventional Shapley values by enumeration: for every coalition the removed
    columns take each background row's values and the model outputs are averaged."""
    cols = list(X.columns)
    d, N = len(cols), len(background)
    bg = background.reset_index(drop=True)
    phi = np.zeros((len(X), d))
    for i in range(len(X)):
        v = {}
        for kept in itertools.product([False, True], repeat=d):
            rows = X.iloc[[i] * N].reset_index(drop=True)
            for j, keep in enumerate(kept):
                if not keep:
                    rows[cols[j]] = bg[cols[j]]
            v[kept] = positive(pipe, rows).mean()
        for j in range(d):
            for kept, value in v.items():
                if kept[j]:
                    continue
                s = sum(kept)
                weight = math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)
                with_j = tuple(True if k == j else kept[k] for k in range(d))
                phi[i, j] += weight * (v[with_j] - value)
    return phi


def test_exact_shapley_equals_brute_force_and_model_sees_valid_frames(data):
    train, _, pipe = data
    X, background = make_frame(4, 1), make_frame(12, 2)
    model = CheckedModel(pipe, train)
    e = xai.explain(model, X, method="exact-shap", background=background, progress=False)
    np.testing.assert_allclose(e.values, brute_force_shapley(pipe, X, background), atol=1e-10)
    # the estimator sees each call padded to a whole multiple of CALL_ROW_MULTIPLE rows
    assert model.rows % CALL_ROW_MULTIPLE == 0 and 0 <= model.rows - e.evaluations and \
        e.evaluations > 0
    assert e.feature_names == list(X.columns)
    # efficiency: the base value plus the attributions is the model's output
    np.testing.assert_allclose(e.base_values + e.values.sum(1), positive(pipe, X), atol=1e-12)


def test_explanation_keeps_codes_and_categories_for_display(data, tmp_path):
    _, _, pipe = data
    X, background = make_frame(6, 3), make_frame(10, 4)
    e = xai.explain(pipe, X, method="exact-shap", background=background, progress=False)
    cats = e.options["categories"]
    assert cats["size"] == ["S", "M", "L"]  # a Categorical keeps its own order
    assert cats["member"] == [False, True]
    codes = e.data[:, list(X.columns).index("colour")].astype(int)
    assert [cats["colour"][c] for c in codes] == list(X.colour)
    loaded = xai.Explanation.load(e.save(tmp_path / "cat.npz"))
    assert loaded.options["categories"] == cats
    np.testing.assert_array_equal(loaded.data, e.data)
    fig = e.plot.waterfall(row=0)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert f"colour = {X.colour[0]}" in labels
    e.plot.beeswarm()
    e.plot.bar()


def test_kernelshap_runs_and_agrees_with_exact(data):
    train, _, pipe = data
    X, background = make_frame(3, 5), make_frame(8, 6)
    model = CheckedModel(pipe, train)
    exact = xai.explain(model, X, method="exact-shap", background=background, progress=False)
    kernel = xai.explain(model, X, method="kernelshap", background=background, budget=400,
                         seed=0, progress=False)
    np.testing.assert_allclose(kernel.values.sum(1), exact.values.sum(1), atol=1e-10)
    np.testing.assert_allclose(kernel.values, exact.values, atol=1e-8)


@pytest.mark.parametrize("method, options", [
    ("occlusion", {}),                                   # baseline "mean" of the background
    ("occlusion", {"baseline": "median"}),
    ("occlusion", {"baseline": 0.0}),
    ("lime", {}),
    ("shap", {"max_background": 4, "background_summary": "kmeans"}),
])
def test_removals_that_compute_numbers_are_refused(data, method, options):
    train, _, pipe = data
    model = CheckedModel(pipe, train)
    with pytest.raises(InputError) as err:
        xai.explain(model, make_frame(3, 7), method=method, background=make_frame(10, 8),
                    progress=False, **options)
    text = str(err.value)
    assert "['colour', 'size', 'member']" in text
    assert "removal='marginal'" in text and "baseline='mode'" in text
    assert model.rows == 0  # refused before any model call


def test_conditional_gaussian_is_refused(data):
    train, _, pipe = data
    explainer = xai.Explainer(removal="conditional-gaussian", summary="exact-shapley",
                              background=make_frame(10, 8))
    with pytest.raises(InputError, match=r"removal 'conditional-gaussian'.*\['colour'"):
        explainer.explain(CheckedModel(pipe, train), make_frame(3, 7))


def test_baseline_row_replaces_categories_by_categories(data):
    train, _, pipe = data
    X = make_frame(5, 9)
    row = make_frame(1, 10).iloc[0]
    model = CheckedModel(pipe, train)
    e = xai.explain(model, X, method="occlusion", baseline=row, progress=False)
    for j, col in enumerate(X.columns):
        removed = X.copy()
        removed[col] = pd.Series([row[col]] * len(X), dtype=X[col].dtype)
        np.testing.assert_allclose(e.values[:, j], positive(pipe, X) - positive(pipe, removed),
                                   atol=1e-12)


def test_baseline_mode_is_each_columns_most_frequent_value(data):
    train, _, pipe = data
    X, background = make_frame(4, 11), make_frame(15, 12)
    mode = {c: background[c].mode().iloc[0] for c in background.columns}
    by_mode = xai.explain(CheckedModel(pipe, train), X, method="occlusion", baseline="mode",
                          background=background, progress=False)
    by_row = xai.explain(pipe, X, method="occlusion", baseline=mode, progress=False)
    np.testing.assert_allclose(by_mode.values, by_row.values, atol=1e-12)


def test_sampled_removals_and_donors_replace_categories_by_categories(data):
    train, y, pipe = data
    model = CheckedModel(pipe, train)
    X, background = make_frame(3, 13), make_frame(10, 14)
    product = xai.Explainer(removal="product-marginal", summary="exact-shapley",
                            background=background, n_samples=8, seed=0)
    e = product.explain(model, X)
    np.testing.assert_allclose(e.base_values + e.values.sum(1), positive(pipe, X), atol=1e-12)
    perm = xai.explain(model, train[:40], method="permutation-importance", y=y[:40], seed=0,
                       progress=False)
    assert np.isfinite(perm.values).all()
    # a fractional-capable summary gets boolean masks: codes are never interpolated
    sobol = xai.Explainer(removal="baseline", summary="sobol", baseline=background.iloc[0],
                          seed=0)
    assert np.isfinite(sobol.explain(model, X).values).all()
    assert model.rows > 0


def test_background_categories_unknown_to_the_rows_join_the_categories(data):
    train, _, pipe = data
    X = make_frame(8, 15)
    X["colour"] = pd.Series(["red", "green"] * 4, dtype="str")
    background = make_frame(10, 16)
    background.loc[0, "colour"] = "blue"
    e = xai.explain(CheckedModel(pipe, train), X, method="exact-shap", background=background,
                    progress=False)
    assert e.options["categories"]["colour"] == ["green", "red", "blue"]
    np.testing.assert_allclose(e.values, brute_force_shapley(pipe, X, background), atol=1e-10)


def test_a_function_receives_a_dataframe_with_the_columns(data):
    _, _, pipe = data
    X, background = make_frame(3, 17), make_frame(6, 18)
    seen = []

    def fn(frame):
        seen.append(frame)
        return positive(pipe, frame)

    e = xai.explain(fn, X, method="exact-shap", background=background, progress=False)
    assert all(isinstance(f, pd.DataFrame) for f in seen)
    assert all(dict(f.dtypes) == dict(X.dtypes) for f in seen)
    np.testing.assert_allclose(e.values, brute_force_shapley(pipe, X, background), atol=1e-10)
    # the caller's own adapter counts the rows its copy evaluated
    adapter = CallableModel(fn)
    e2 = xai.explain(adapter, X, method="exact-shap", background=background, progress=False)
    assert adapter.evaluations == e2.evaluations > 0
    assert adapter.table is None


def test_all_numeric_frames_reach_a_function_as_frames_and_arrays_as_arrays():
    rng = np.random.default_rng(19)
    X = pd.DataFrame({"a": rng.normal(size=4), "b": rng.integers(0, 5, 4)})
    background = pd.DataFrame({"b": rng.integers(0, 5, 6), "a": rng.normal(size=6)})
    kinds, b_dtypes = [], set()

    def fn(rows):
        kinds.append(type(rows))
        if isinstance(rows, pd.DataFrame):
            assert list(rows.columns) == ["a", "b"]
            b_dtypes.add(rows["b"].dtype)
            return rows["a"].to_numpy() + 2.0 * rows["b"].to_numpy()
        return rows[:, 0] + 2.0 * rows[:, 1]

    e = xai.explain(fn, X, method="exact-shap", background=background, progress=False)
    assert set(kinds) == {pd.DataFrame}
    assert b_dtypes == {np.dtype(np.int64)}  # values of rows: the int column stays int
    expected = np.array([1.0, 2.0]) * (X.to_numpy() - background[["a", "b"]].to_numpy().mean(0))
    np.testing.assert_allclose(e.values, expected, atol=1e-12)
    kinds.clear()
    e2 = xai.explain(fn, X.to_numpy(np.float64), method="exact-shap",
                     background=background[["a", "b"]].to_numpy(np.float64), progress=False)
    assert set(kinds) == {np.ndarray}
    np.testing.assert_allclose(e2.values, e.values, atol=1e-12)
    # numeric columns still take numbers: the mean baseline of a numeric frame works, and an
    # int column given a fractional mean is passed as float64 rather than truncated
    b_dtypes.clear()
    occ = xai.explain(fn, X, method="occlusion", background=background, progress=False)
    mean = background[["a", "b"]].to_numpy().mean(0)
    np.testing.assert_allclose(occ.values, np.array([1.0, 2.0]) * (X.to_numpy() - mean),
                               atol=1e-12)
    assert np.dtype(np.float64) in b_dtypes


def test_histogram_boosting_with_categorical_dtypes():
    train = make_frame(200, 20)
    y = ((train.colour == "red").to_numpy() ^ (train.age > 40).to_numpy()).astype(int)
    train = train.astype({"colour": "category"})
    model = HistGradientBoostingClassifier(max_iter=20, categorical_features="from_dtype",
                                           random_state=0).fit(train, y)
    X, background = train[:4], train[100:110]
    e = xai.explain(model, X, method="exact-shap", background=background, progress=False)
    np.testing.assert_allclose(e.base_values + e.values.sum(1),
                               model.predict_proba(X)[:, 1], atol=1e-12)


def test_missing_categories_and_torch_models_are_refused(data):
    _, _, pipe = data
    X = make_frame(4, 21)
    X["colour"] = X["colour"].astype(object)
    X.loc[2, "colour"] = None
    with pytest.raises(InputError, match=r"X column 'colour' has 1 missing values \(first in "
                                         r"row 2\).*impute"):
        xai.explain(pipe, X, background=make_frame(5, 22), progress=False)
    with pytest.raises(InputError, match=r"\['colour', 'size', 'member'\].*TorchModel"):
        xai.explain(torch.nn.Linear(5, 1), make_frame(4, 21), background=make_frame(5, 22),
                    progress=False)


def test_columns_in_another_order_than_fitted_are_refused(data):
    _, _, pipe = data
    X = make_frame(3, 23)
    with pytest.raises(InputError, match=r"another order.*feature_names_in_"):
        xai.explain(pipe, X[X.columns[::-1]], background=make_frame(5, 24), progress=False)


def test_decoding_refuses_values_that_are_not_category_codes():
    X = make_frame(3, 25)
    table = TableEncoding.fit(X)
    codes = table.encode(columns_of(X, table.names, "X"), "X")
    frame = table.decode(codes)
    pd.testing.assert_frame_equal(frame, X)
    codes[0, 0] = 0.5  # an interpolated code
    with pytest.raises(InputError, match=r"column 'colour' holds categories.*0\.5"):
        table.decode(codes)
    fn = CallableModel(lambda f: np.zeros(len(f)))
    fn.table = table
    with pytest.raises(ModelError):
        fn(torch.as_tensor(codes))
