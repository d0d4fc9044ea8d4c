"""Every registered explainer, removal, behaviour and summary passes the conformance checks of
:mod:`xai.conformance`: each bad input of one table is refused with its named error before any
model call, and the component satisfies its kind's axioms on a linear model. Hypothesis sends
random option values, shapes and dtypes through ``explain``: a result or a named error, never a
raw exception."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xai
from xai import conformance, registry
from xai.summaries.exact import ExactShapley

COMPONENTS = [(kind, name) for kind in conformance.KINDS for name in conformance.components(kind)]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize(("kind", "name"), COMPONENTS, ids=[f"{k}-{n}" for k, n in COMPONENTS])
def test_component_conforms(kind, name):
    call = conformance.valid_call(kind, name)
    if isinstance(call, str):  # not for tabular linear models: it must say so by a named error
        assert call.split(":")[0] in dir(xai.errors), call
        pytest.skip(call)
    conformance.check(kind, name)


def test_the_table_covers_every_kind_of_bad_input():
    ids = {case.id for case in conformance.BAD_INPUTS}
    assert {"nan-in-X", "empty-X", "complex-X", "text-X", "nan-in-background", "nan-labels",
            "seed-negative", "budget-text", "unknown-option"} <= ids
    assert len(COMPONENTS) >= 40


class _OffByOne(ExactShapley):
    """Exact Shapley values plus one: breaks efficiency and the dummy axiom."""

    name = "off-by-one"

    def __call__(self, game, rows=None):
        result = super().__call__(game, rows)
        result.values = result.values + 1.0
        return result


class _CallsFirst(ExactShapley):
    """Calls the model before it checks its own option ``strength``."""

    name = "calls-first"

    def __init__(self, *, strength: float = 1.0, max_exact_features=20):
        super().__init__(max_exact_features=max_exact_features)
        self.strength = strength

    def check(self, game):
        game(np.ones((1, game.d), dtype=bool))
        if self.strength < 0:
            raise xai.OptionError("strength must be >= 0")


@pytest.fixture
def broken_summaries():
    for cls in (_OffByOne, _CallsFirst):
        xai.register("summary", cls.name, cls)
    yield
    for cls in (_OffByOne, _CallsFirst):
        registry.unregister("summary", cls.name)


def test_a_summary_that_breaks_its_axioms_fails_the_check(broken_summaries):
    failures = conformance.check_axioms("summary", "off-by-one")
    assert set(failures) == {"efficiency", "dummy", "closed-form"}
    with pytest.raises(AssertionError, match="off-by-one"):
        conformance.check("summary", "off-by-one")


def test_a_component_that_calls_the_model_before_checking_fails(broken_summaries):
    call = conformance.valid_call("summary", "calls-first")
    case = conformance.BadInput("negative-strength", (xai.OptionError,),
                                lambda c: {**c, "strength": -1.0})
    assert conformance.bad_input_outcome(call, case) == "raised only after 1 model calls"
    assert conformance.check_bad_inputs("summary", "calls-first") == {}


# ---- hypothesis: random options, shapes and dtypes --------------------------------------------

RNG = np.random.default_rng(1)
X4 = RNG.normal(size=(3, 4))
BG4 = RNG.normal(size=(5, 4))

option_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**18, 10**18),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5),
    st.sampled_from(["auto", "1GiB", "-3", "1e3"]))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(["budget", "seed", "batch_size", "tol", "max_background",
                               "memory_cap", "min_units"]),
       value=option_values, method=st.sampled_from(["kernelshap", "permutation-shap",
                                                    "banzhaf", "lime"]))
def test_any_option_value_gives_a_result_or_a_named_error(option, value, method):
    if option == "budget" and isinstance(value, int) and not isinstance(value, bool) \
            and value > 10**7:
        value = 10**7  # a valid huge budget takes long on purpose; the cap is tested elsewhere
    try:
        e = xai.explain(lambda x: x @ np.arange(1.0, 5.0), X4, method=method, background=BG4,
                        progress=False, **{option: value})
    except xai.XaiError:
        return
    assert np.isfinite(e.values).all()


dtypes = st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.bool_, np.complex128,
                          np.str_, object])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=5), dtype=dtypes,
       nan=st.booleans())
def test_any_input_array_gives_a_result_or_a_named_error(shape, dtype, nan):
    X = np.ones(shape, dtype=np.float64)
    if nan and X.size:
        X.flat[0] = np.nan
    X = X.astype(dtype) if dtype is not object else X.astype(object)

    def model(x):
        return x.reshape(len(x), -1).sum(1)

    try:
        e = xai.explain(model, X, method="occlusion", baseline=0.0, progress=False)
    except xai.XaiError:
        return
    assert np.isfinite(e.values).all()
