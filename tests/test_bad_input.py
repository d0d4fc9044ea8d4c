"""Bad input: every row of the table raises the right ``XaiError`` subclass, with
a message that names the problem and the fix, and input checks run before any model call.

Each case of :data:`CASES` is one bad call through the public API. It is run three ways:
``test_bad_input`` (error type and message), ``test_checked_before_any_model_call`` (a counting
model was never called) and, for the pieces a message must hold but does not say yet,
``test_message_completeness``.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LinearRegression, LogisticRegression

import xai
from xai import (
    BehaviourError,
    BudgetError,
    FeatureMapError,
    InputError,
    LabelError,
    MaskError,
    ModelError,
    TargetError,
    UnknownNameError,
    XaiError,
)
from xai.behaviours import Prediction
from xai.models import CALL_ROW_MULTIPLE
from xai.removals import Baseline, Marginal

RNG = np.random.default_rng(0)
X4 = RNG.normal(size=(8, 4))  # 8 explicands, 4 columns
BG4 = RNG.normal(size=(5, 4))  # 5 background rows: K_rem = 5 under marginal removal
Y_CLASS = (X4[:, 0] > 0).astype(np.int64)
X30 = RNG.normal(size=(40, 30))
COLS = ["age", "bmi", "bp", "s1"]


# ---- counting models ---------------------------------------------------------------------------

class Counting:
    """A model that counts its calls and rows; ``fn`` maps a numpy batch to outputs."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.fn = fn or (lambda x: x.reshape(len(x), -1).sum(1))
        self.calls = 0
        self.rows = 0

    def __call__(self, x):
        return self._counted(self.fn)(x)

    def _counted(self, fn):
        def counted(x):
            self.calls += 1
            self.rows += len(x)
            return fn(x)
        return counted

    def wrap(self, estimator):
        """A copy of a fitted scikit-learn estimator whose prediction method (the one the adapter
        uses: predict_proba, else decision_function, else predict) is counted."""
        est = copy.deepcopy(estimator)
        name = next(n for n in ("predict_proba", "decision_function", "predict")
                    if hasattr(est, n))
        setattr(est, name, self._counted(getattr(est, name)))
        return est

    def torch_linear(self, p: int) -> torch.nn.Module:
        """A float64 ``torch.nn.Linear(p, 1)`` whose forward calls are counted."""
        module = torch.nn.Linear(p, 1).double()
        module.register_forward_pre_hook(lambda mod, args: self._counted(len)(args[0]))
        return module


@cache
def regressor30() -> LinearRegression:
    """A scikit-learn regressor fitted on 30 numpy columns."""
    return LinearRegression().fit(X30, X30[:, 0] + 0.1 * X30[:, 1])


@cache
def classifier4() -> LogisticRegression:
    """A binary scikit-learn classifier on the 4 columns of ``X4``."""
    return LogisticRegression().fit(X4, Y_CLASS)


@cache
def regressor4() -> LinearRegression:
    """A scikit-learn regressor (k = 1 raw output) on the 4 columns of ``X4``."""
    return LinearRegression().fit(X4, X4 @ np.arange(1.0, 5.0))


def two_class_probs(x: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-x.sum(1)))
    return np.stack([1 - p, p], 1)


# ---- the cases ---------------------------------------------------------------------------------

@dataclass
class Case:
    """One bad call. ``says`` are regexes the message must match (problem, offending value,
    fix); ``before_model`` whether the check must run before any model call
    (``"full"``: the check needs the number of outputs ``k``, so only the full-input
    prediction may run); ``missing`` holds ``(regex, reason)`` pieces the message
    must also contain."""

    id: str
    error: type[XaiError]
    trigger: Callable[[Counting], object]
    says: tuple[str, ...]
    before_model: bool | str = True
    bug: str | None = None  # the call does not raise ``error`` at all (strict xfail)
    missing: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _explain(m: Counting, X=X4, **kw):
    kw.setdefault("progress", False)
    return xai.explain(m, X, **kw)


def _nan_at(a: np.ndarray, pos: tuple[int, ...], value=np.nan) -> np.ndarray:
    a = a.copy()
    a[pos] = value
    return a


CASES = [
    # -- input rank / width ----------------------------------------------------------------------
    Case("width-sklearn-31-for-30", InputError,
         lambda m: xai.explain(m.wrap(regressor30()), RNG.normal(size=(3, 31)),
                               background=X30[:5], progress=False),
         (r"\b31 columns", r"expects 30\b")),
    Case("width-sklearn-31-for-30-pandas", InputError,
         lambda m: xai.explain(m.wrap(regressor30()),
                               pd.DataFrame(RNG.normal(size=(3, 31)),
                                            columns=[f"c{i}" for i in range(31)]),
                               background=X30[:5], progress=False),
         (r"\b31 columns", r"expects 30\b", r"columns: \[.*'c30'")),
    Case("torch-1d-row", InputError,
         lambda m: xai.explain(m.torch_linear(4),
                               torch.as_tensor(X4[0]), background=torch.as_tensor(BG4),
                               progress=False),
         (r"shape \(4,\)", r"batch \(n, \.\.\.\)", r"scikit-learn")),
    Case("width-differs-from-feature-map", InputError,
         lambda m: _explain(m, RNG.normal(size=(3, 5)), background=RNG.normal(size=(4, 5)),
                            features=xai.FeatureMap.tabular(4)),
         (r"\(4,\)", r"\(5,\)"),),
    # -- NaN / inf -------------------------------------------------------------------------------
    Case("nan-in-X", InputError,
         lambda m: _explain(m, _nan_at(X4, (2, 1)), background=BG4),
         (r"\bX\b", r"1 NaN or infinite", r"\(2, 1\)", r"impute or drop", r"native_missing")),
    Case("inf-in-X", InputError,
         lambda m: _explain(m, _nan_at(X4, (1, 3), -np.inf), background=BG4),
         (r"\bX\b", r"1 NaN or infinite", r"\(1, 3\)", r"impute or drop")),
    Case("nan-in-background", InputError,
         lambda m: _explain(m, background=_nan_at(_nan_at(BG4, (3, 2)), (4, 0))),
         (r"background", r"2 NaN or infinite", r"\(3, 2\)", r"impute or drop")),
    Case("nan-in-baseline-vector", InputError,
         lambda m: _explain(m, method="occlusion", baseline=np.array([0.0, np.nan, 0.0, 0.0])),
         (r"baseline", r"1 NaN or infinite", r"\(1,\)", r"impute or drop")),
    Case("inf-scalar-baseline", InputError,
         lambda m: _explain(m, method="occlusion", baseline=np.inf),
         (r"baseline", r"NaN or infinite", r"impute or drop"),),
    # -- background columns ----------------------------------------------------------------------
    Case("background-other-columns-pandas", InputError,
         lambda m: _explain(m, pd.DataFrame(X4, columns=COLS),
                            background=pd.DataFrame(BG4, columns=["age", "bmi", "bp", "s2"])),
         (r"background", r"missing \['s1'\]", r"extra \['s2'\]"),
         missing=((r"same columns|give .*background|rename|select",
                   "no fix is stated: say to give the background the inputs' columns"),)),
    Case("background-other-width-numpy", InputError,
         lambda m: _explain(m, background=RNG.normal(size=(5, 6))),
         (r"background", r"\(6,\)", r"\(4,\)", r"same width")),
    # -- feature maps ----------------------------------------------------------------------------
    Case("groups-overlap", FeatureMapError,
         lambda m: _explain(m, pd.DataFrame(X4, columns=COLS), background=BG4,
                            features={"body": ["age", "bmi"], "blood": ["bmi", "bp", "s1"]}),
         (r"overlap", r"'bmi' in 'body' and 'blood'", r"exactly one group")),
    Case("groups-miss-columns", FeatureMapError,
         lambda m: _explain(m, pd.DataFrame(X4, columns=COLS), background=BG4,
                            features={"body": ["age", "bmi"], "blood": ["bp"]}),
         (r"\['s1'\]", r"no feature group", r"fixed=")),
    Case("group-empty", FeatureMapError,
         lambda m: _explain(m, pd.DataFrame(X4, columns=COLS), background=BG4,
                            features={"all": COLS, "nothing": []}),
         (r"'nothing'", r"empty", r"give it columns or drop it")),
    Case("no-features-d0", FeatureMapError,
         lambda m: _explain(m, background=BG4,
                            features=xai.FeatureMap.groups({}, 4, fixed=[0, 1, 2, 3])),
         (r"d = 0", r"assign at least one")),
    # -- targets ---------------------------------------------------------------------------------
    Case("target-out-of-range", TargetError,
         lambda m: _explain(m.wrap(classifier4()), background=BG4, target=5),
         (r"target 5", r"2 outputs", r"0\.\.1"), before_model="full"),
    Case("target-string-not-understood", TargetError,
         lambda m: _explain(m.wrap(classifier4()), background=BG4, target="largest"),
         (r"'largest'", r"not understood", r"0\.\.1", r"'predicted'", r"'all'"),
         before_model="full"),
    # -- labels ----------------------------------------------------------------------------------
    Case("labels-missing-lossshap", LabelError,
         lambda m: _explain(m.wrap(classifier4()), method="lossshap", background=BG4),
         (r"'lossshap'", r"needs labels", r"pass y=", r"8 rows")),
    Case("labels-missing-sage", LabelError,
         lambda m: _explain(m.wrap(classifier4()), method="sage", background=BG4),
         (r"'sage'", r"needs labels", r"pass y=", r"8 rows")),
    Case("labels-missing-permutation-importance", LabelError,
         lambda m: _explain(m.wrap(classifier4()), method="permutation-importance"),
         (r"'permutation-importance'", r"needs labels", r"pass y=", r"8 rows")),
    Case("labels-wrong-length", LabelError,
         lambda m: _explain(m.wrap(classifier4()), method="lossshap", background=BG4,
                            y=Y_CLASS[:5]),
         (r"\b5 labels", r"\b8 rows", r"one label per row"),
         missing=((r"loss", "the behaviour that needs the labels is not named"),)),
    Case("class-labels-out-of-range", LabelError,
         lambda m: _explain(m.wrap(classifier4()), method="lossshap", background=BG4,
                            y=Y_CLASS + 3),
         (r"class label 4", r"2 classes", r"valid 0\.\.1"), before_model="full",
         missing=((r"loss", "the behaviour that needs the labels is not named"),)),
    # -- behaviours ------------------------------------------------------------------------------
    Case("kl-on-regression", BehaviourError,
         lambda m: _explain(m.wrap(regressor4()), method="shap-kl", background=BG4),
         (r"needs probabilities", r"raw outputs", r"output_kind=", r"prediction behaviour",
          r"squared-error")),
    Case("cross-entropy-on-regression", BehaviourError,
         lambda m: _explain(m.wrap(regressor4()), method="lossshap", background=BG4,
                            y=X4.sum(1), loss="cross-entropy"),
         (r"needs probabilities", r"raw outputs", r"squared-error")),
    # -- names -----------------------------------------------------------------------------------
    Case("unknown-method", UnknownNameError,
         lambda m: _explain(m, method="kernalshap", background=BG4),
         (r"'kernalshap'", r"Did you mean 'kernelshap'\?", r"Known explainer names: .*\bshap\b")),
    Case("unknown-option", UnknownNameError,
         lambda m: _explain(m, background=BG4, budgett=100),
         (r"option 'budgett'", r"Did you mean 'budget'\?", r"Known option names: .*\bbudget\b")),
    Case("unknown-removal", UnknownNameError,
         lambda m: xai.Explainer("marginl", progress=False).explain(m, X4, background=BG4),
         (r"removal 'marginl'", r"Did you mean 'marginal'\?", r"Known removal names: .*baseline")),
    Case("unknown-behaviour", UnknownNameError,
         lambda m: xai.Explainer("marginal", "predictoin", progress=False).explain(
             m, X4, background=BG4),
         (r"behaviour 'predictoin'", r"Did you mean 'prediction'\?", r"Known behaviour names")),
    Case("unknown-summary", UnknownNameError,
         lambda m: xai.Explainer("marginal", "prediction", "exact-shaply",
                                 progress=False).explain(m, X4, background=BG4),
         (r"summary 'exact-shaply'", r"Did you mean 'exact-shapley'\?", r"Known summary names")),
    # -- budgets ---------------------------------------------------------------------------------
    # minimum rows: fixed coalitions plus 2 units; d = 4 and K_rem = 5 under marginal
    # removal with the 5-row background: KernelSHAP (K+1) + 2(d+1) K = 56 rows, permutation
    # (K+1) + 2 * 2(d-1) K = 66 rows, LIME (baseline, K = 1) 1 + (d+2) = 7 rows.
    Case("budget-too-small-kernelshap", BudgetError,
         lambda m: _explain(m, method="kernelshap", background=BG4, budget=10),
         (r"budget 10\b", r"kernelshap", r"d=4\b", r"\b5 model rows per coalition \(K_rem\)",
          r"at least 56 rows", r"12 coalitions", r"[Rr]aise budget", r"background",
          r"group features")),
    Case("budget-too-small-permutation-shap", BudgetError,
         lambda m: _explain(m, method="permutation-shap", background=BG4, budget=10),
         (r"budget 10\b", r"permutation-shapley", r"d=4\b", r"K_rem", r"at least 66 rows",
          r"14 coalitions", r"[Rr]aise budget")),
    Case("budget-too-small-lime", BudgetError,
         lambda m: _explain(m, method="lime", background=BG4, budget=3),
         (r"budget 3\b", r"lime", r"d=4\b", r"at least 7 rows", r"7 coalitions",
          r"[Rr]aise budget")),
    Case("exact-enumeration-too-large", BudgetError,
         lambda m: _explain(m, RNG.normal(size=(2, 30)), method="exact-shap",
                            background=RNG.normal(size=(3, 30))),
         (r"d=30\b", r"2\^30 = 1073741824", r"model rows", r"K_rem=3",
          r"max_exact_features=20", r"kernelshap", r"permutation-shap", r"group features")),
    # -- input kinds -----------------------------------------------------------------------------
    Case("blur-on-tabular", InputError,
         lambda m: xai.Explainer("blur", "prediction", "remove-individual",
                                 progress=False).explain(m, X4),
         (r"blur", r"needs image inputs", r"tabular")),
    Case("shap-without-background", InputError,
         lambda m: _explain(m, method="shap"),
         (r"needs a background", r"pass background=")),
]

CASE_IDS = [c.id for c in CASES]
assert len(set(CASE_IDS)) == len(CASE_IDS)


def _raise(case: Case, model: Counting) -> XaiError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(case.error) as info:
            case.trigger(model)
    return info.value


def _says(err: BaseException, *patterns: str) -> None:
    text = str(err)
    for pat in patterns:
        assert re.search(pat, text), f"message lacks {pat!r}: {text}"


def _bug_marks(case: Case) -> list:
    return [pytest.mark.xfail(strict=True, reason=f"BUG: {case.bug}")] if case.bug else []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_bug_marks(c)) for c in CASES])
def test_bad_input(case: Case) -> None:
    err = _raise(case, Counting())
    assert isinstance(err, XaiError) and isinstance(err, ValueError)
    _says(err, *case.says)


BEFORE = [c for c in CASES if c.before_model and not c.bug]
NOT_BEFORE: dict[str, str] = {}  # every check that needs no model output runs before one


def _call_marks(case: Case) -> list:
    reason = NOT_BEFORE.get(case.id)
    return [pytest.mark.xfail(strict=True, reason=f"BUG: {reason}")] if reason else []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_call_marks(c))
                                  for c in BEFORE])
def test_checked_before_any_model_call(case: Case) -> None:
    model = Counting()
    _raise(case, model)
    if case.before_model == "full":
        # the check needs k: at most the one full-input prediction of the 8 explicands
        # (a torch module's call is padded to a whole multiple of CALL_ROW_MULTIPLE rows)
        padded = -(-len(X4) // CALL_ROW_MULTIPLE) * CALL_ROW_MULTIPLE
        assert model.calls <= 1 and model.rows <= padded, (model.calls, model.rows)
    else:
        assert model.calls == 0, f"the model was called {model.calls} times"


MISSING = [(c, i, pat, reason) for c in CASES for i, (pat, reason) in enumerate(c.missing)]


@pytest.mark.parametrize("case,pattern,reason", [
    pytest.param(c, p, r, id=f"{c.id}-{i}") for c, i, p, r in MISSING])
def test_message_completeness(case: Case, pattern: str, reason: str) -> None:
    _says(_raise(case, Counting()), pattern)


def test_unknown_names_are_listed_sorted() -> None:
    err = _raise(CASES[CASE_IDS.index("unknown-method")], Counting())
    listed = re.search(r"Known explainer names: (.*)\.$", str(err)).group(1).split(", ")
    assert listed == sorted(listed) and set(xai.methods()) <= set(listed)
    assert isinstance(err, KeyError) and str(err).startswith("unknown")  # not KeyError-quoted


def test_single_row_accepted_for_sklearn() -> None:
    """The counterpart of ``torch-1d-row``: a 1-D row of a tabular (scikit-learn) model is
    reshaped to ``(1, p)``."""
    est = LinearRegression().fit(X4, X4 @ np.arange(1.0, 5.0))
    ex = xai.explain(est, X4[0], background=BG4, progress=False)
    assert ex.values.shape == (1, 4)


# ---- model failures (checked on model output) ----------------------------------------------

def test_model_raises_is_chained() -> None:
    def boom(x):
        raise RuntimeError("kaboom")

    with pytest.raises(ModelError) as info:
        xai.explain(boom, X4, background=BG4, progress=False)
    err = info.value
    assert isinstance(err.__cause__, RuntimeError) and str(err.__cause__) == "kaboom"
    _says(err, r"RuntimeError: kaboom", r"chunk -?\d+", r"explicands \[0, 1, 2, .*7\]",
          r"shape \(8, 4\)", r"dtype torch\.float64", r"err\.inputs")
    assert err.inputs is not None and tuple(err.inputs.shape) == (8, 4)


def test_model_returns_nan_sets_inputs() -> None:
    """NaN in a coalition chunk (the full-input call is fine): the message names the chunk,
    explicands and bad-row count, and ``err.inputs`` holds the bad rows."""
    def fn(x):
        out = x.sum(1)
        if len(x) > len(X4):  # not the full-input call
            out[0] = np.nan
        return out

    with pytest.raises(ModelError) as info:
        xai.explain(Counting(fn), X4, background=BG4, progress=False)
    err = info.value
    _says(err, r"NaN or inf", r"\b1 of \d+ rows", r"chunk \d+", r"explicands \[",
          r"err\.inputs")
    assert err.inputs is not None and err.inputs.shape[0] == 1
    assert torch.isfinite(torch.as_tensor(err.inputs)).all()


def test_model_returns_wrong_row_count() -> None:
    with pytest.raises(ModelError) as info:
        xai.explain(lambda x: x.sum(1)[:-1], X4, background=BG4, progress=False)
    err = info.value
    _says(err, r"returned \(7,\) for 8 input rows", r"chunk -?\d+", r"explicands \[0, 1",
          r"one output row per input row")
    assert err.inputs is not None and tuple(err.inputs.shape) == (8, 4)


def _changing_k(x):
    s = x.sum(1)
    return s if len(x) == len(X4) else np.stack([s, -s], 1)


@pytest.mark.parametrize("fn,pattern", [
    pytest.param(lambda x: x.sum(1)[:-1], r"err\.inputs", id="wrong-rows:err.inputs"),
    pytest.param(_changing_k, r"err\.inputs", id="changing-k:err.inputs"),
    pytest.param(_changing_k, r"explicands \[", id="changing-k:explicands"),
])
def test_model_output_message_completeness(fn, pattern) -> None:
    with pytest.raises(ModelError, match=pattern):
        xai.explain(fn, X4, background=BG4, progress=False)


def test_model_changes_number_of_outputs() -> None:
    with pytest.raises(ModelError) as info:
        xai.explain(_changing_k, X4, background=BG4, progress=False)
    _says(info.value, r"2 outputs per row in chunk \d+", r"\b1 before", r"same number")
    assert info.value.inputs is not None


def test_model_changes_number_of_outputs_within_a_split_call() -> None:
    def second_call_wider(x):  # rows 0..1 of every call: one output, later rows: two
        s = torch.as_tensor(x).sum(1, keepdim=True)
        return s if second_call_wider.calls % 2 == 1 else torch.cat([s, -s], 1)

    def counted(x):
        second_call_wider.calls += 1
        return second_call_wider(x)
    second_call_wider.calls = 0
    model = xai.as_model(counted, batch_size=2)
    with pytest.raises(ModelError) as info:
        model(torch.ones(4, 3))
    _says(info.value, r"2 outputs per row for rows 2\.\.3", r"1 for the rows before",
          r"same number")
    assert info.value.inputs.shape == (2, 3)
    # consistent split calls: one float64 result, equal to one unsplit call
    ok = xai.as_model(lambda x: np.stack([x.sum(1), x[:, 0]], 1).astype(np.float32),
                      batch_size=3)
    x = torch.arange(28.0).reshape(7, 4)
    got = ok(x)
    assert got.dtype == torch.float64 and ok.evaluations == 7
    assert torch.equal(got, torch.stack([x.sum(1), x[:, 0]], 1).double())


# ---- masks (game level) ----------------------------------------------------------------------

def _game(removal, model: Counting) -> xai.Game:
    return xai.Game(xai.as_model(model), X4, removal, Prediction(), xai.FeatureMap.tabular(4))


@pytest.mark.parametrize("masks,patterns", [
    pytest.param(np.full((2, 4), 0.5), (r"removal 'marginal'", r"only boolean",
                                        r"accept fractions: baseline, blur"), id="fractional"),
    pytest.param(np.ones((2, 5), bool), (r"\(m, 4\)", r"4 features", r"got \(2, 5\)"),
                 id="width"),
    pytest.param(np.ones((8, 2, 3), bool), (r"\(rows, m, 4\)", r"got \(8, 2, 3\)"),
                 id="width-per-explicand"),
    pytest.param(np.array([[1.5, 0.0, 1.0, 0.0]]), (r"\[0, 1\]",), id="above-one"),
    pytest.param(np.array([[-1.0, 0.0, 1.0, 0.0]]), (r"\[0, 1\]",), id="negative"),
    pytest.param(np.array([[np.nan, 0.0, 1.0, 0.0]]), (r"\[0, 1\]",), id="nan"),
])
def test_bad_masks(masks, patterns) -> None:
    model = Counting()
    game = _game(Marginal(BG4), model)
    calls, rows = model.calls, game.rows_evaluated
    with pytest.raises(MaskError) as info:
        game(masks)
    _says(info.value, *patterns)
    assert (model.calls, game.rows_evaluated) == (calls, rows)  # no model call for the masks


def test_mask_out_of_range_names_value() -> None:
    game = _game(Baseline(0.0), Counting())
    with pytest.raises(MaskError, match=r"1\.5"):
        game(np.array([[1.5, 0.0, 1.0, 0.0]]))


def test_fractional_masks_accepted_by_baseline() -> None:
    """The counterpart of the fractional case: a fraction-capable removal takes them."""
    vals = _game(Baseline(0.0), Counting())(np.full((2, 4), 0.5))
    np.testing.assert_allclose(vals.numpy(), np.repeat(0.5 * X4.sum(1)[:, None], 2, 1))
