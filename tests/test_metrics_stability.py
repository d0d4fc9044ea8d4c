"""Relative input, representation and output stability (Agarwal et al. 2022) against Quantus
0.6.0 on identical perturbed copies (Quantus's perturbation replays the copies xai drew), and
against closed forms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import xai
from xai.errors import InputError, ModelTypeError, OptionError

quantus = pytest.importorskip("quantus")

N_COPIES = 12


def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10), torch.nn.ReLU(),
                               torch.nn.Linear(10, 3)).eval()


X = np.random.default_rng(0).normal(size=(5, 1, 4, 4)).astype(np.float32)


class GradientTimesInput:
    """Gradient × input of the predicted class; records every batch it explains."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def __call__(self, model, rows, targets=None):
        self.seen.append(np.asarray(rows).copy())
        dtype = next(model.parameters()).dtype
        x = torch.as_tensor(np.asarray(rows), dtype=dtype).requires_grad_(True)
        out = model(x)
        t = out.argmax(1) if targets is None else torch.as_tensor(np.asarray(targets))
        (g,) = torch.autograd.grad(out[torch.arange(len(x)), t].sum(), x)
        return (g * x).detach().numpy()


class Replay:
    """A Quantus perturb_func that returns xai's copies, draw j on its j-th call."""

    def __init__(self, copies: np.ndarray) -> None:
        self.copies, self.calls = copies, 0  # (n, N, D)

    def __call__(self, arr, indices=None, **kwargs):
        out = self.copies[:, self.calls].reshape(arr.shape)
        self.calls += 1
        return out.astype(arr.dtype)


QUANTUS = {"relative-input-stability": ("RelativeInputStability", {}),
           "relative-output-stability": ("RelativeOutputStability", {}),
           "relative-representation-stability": ("RelativeRepresentationStability",
                                                 {"layer_names": ["2"]})}


@pytest.mark.parametrize("name", list(QUANTUS))
def test_equals_quantus_on_the_same_copies(name: str) -> None:
    """Equal up to float32 rounding: the model's outputs on the copies differ from x's by
    about sigma, and Quantus evaluates them in batches of another size (in float32)."""
    model = network()
    explainer = GradientTimesInput()
    options = {"layer": "2"} if name == "relative-representation-stability" else {}
    x = X
    res = xai.metrics.get(name, n_samples=N_COPIES, sigma=1e-3, **options)(
        model, x, np.zeros(X.shape), explainer=explainer)
    assert (res.extras["n_valid_draws"] == N_COPIES).all()  # no prediction changed
    stacked = explainer.seen[0].reshape(len(x) * (N_COPIES + 1), -1)
    copies = stacked[len(X):].reshape(len(X), N_COPIES, -1)
    cls, extra = QUANTUS[name]
    predicted = model(torch.as_tensor(x)).argmax(1).numpy()
    metric = getattr(quantus, cls)(nr_samples=N_COPIES, perturb_func=Replay(copies),
                                   disable_warnings=True, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = metric(model=model, x_batch=x, y_batch=predicted,
                          a_batch=GradientTimesInput()(model, x),
                          explain_func=lambda model, inputs, targets, **kw:
                          GradientTimesInput()(model, inputs, targets),
                          device="cpu", softmax=False)
    np.testing.assert_allclose(res.per_sample, expected, rtol=2e-3)


def test_gradient_times_input_of_a_linear_model_has_input_stability_one() -> None:
    """e = w ⊙ x, so (e_x − e_x')/e_x = (x − x')/x elementwise and every ratio is 1."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    res = xai.metrics.get("relative-input-stability", n_samples=8, sigma=0.01)(
        model, X, np.zeros(X.shape), explainer=GradientTimesInput())
    np.testing.assert_allclose(res.per_sample, 1.0, rtol=1e-4)


def test_copies_with_another_prediction_are_left_out_of_the_max() -> None:
    """A large noise flips some copies' class: the score is the max over the others (Quantus
    would give NaN for the whole row)."""
    model = network()
    res = xai.metrics.get("relative-output-stability", n_samples=40, sigma=1.0)(
        model, X, np.zeros(X.shape), explainer=GradientTimesInput())
    valid = res.extras["n_valid_draws"]
    assert (valid < 40).any() and (valid > 0).all()
    ratios = res.extras["ratios"]
    for i in range(len(X)):
        assert res.per_sample[i] <= ratios[i].max()
        assert np.isclose(ratios[i], res.per_sample[i]).any()


def test_a_row_without_a_copy_of_the_same_prediction_scores_nan_with_a_warning() -> None:
    """A classifier that predicts class 1 wherever the first input is not exactly 0: every
    noisy copy of a row with x₀ = 0 (class 0) changes class."""
    class NonZero(torch.nn.Module):
        def forward(self, x):
            moved = (x[:, :1] != 0).to(x.dtype)
            return torch.cat([torch.zeros_like(moved), moved], 1)

    x = np.array([[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], np.float32)
    with pytest.warns(UserWarning, match="1 rows have no perturbed copy with the same"):
        res = xai.metrics.get("relative-input-stability", n_samples=4)(
            NonZero(), x, np.ones((2, 4)), explainer=lambda m, r: np.asarray(r))
    assert np.isnan(res.per_sample[0]) and res.per_sample[1] == pytest.approx(1.0)


def test_the_representation_hook_is_removed_also_after_an_error() -> None:
    model = network()

    xai.metrics.get("relative-representation-stability", n_samples=3)(
        model, X, np.zeros(X.shape), explainer=GradientTimesInput())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("broken layer")

    model.append(Broken())
    with pytest.raises(RuntimeError, match="broken layer"):
        xai.metrics.get("relative-representation-stability", n_samples=3, layer="2")(
            model, X, np.zeros(X.shape), explainer=lambda m, r: np.ones(np.shape(r)))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_the_default_representation_is_the_input_of_the_last_layer() -> None:
    model = network()
    kwargs = {"explainer": GradientTimesInput()}
    default = xai.metrics.get("relative-representation-stability", n_samples=6)(
        model, X, np.zeros(X.shape), **kwargs)
    named = xai.metrics.get("relative-representation-stability", n_samples=6, layer="2")(
        model, X, np.zeros(X.shape), **kwargs)
    np.testing.assert_allclose(default.per_sample, named.per_sample)


def test_representation_stability_refuses_a_model_without_layers() -> None:
    with pytest.raises(ModelTypeError, match=r"torch\.nn\.Module.*relative-input-stability"):
        xai.metrics.get("relative-representation-stability")(
            lambda r: np.asarray(r)[:, :2], X.reshape(5, -1), np.zeros((5, 16)),
            explainer=lambda m, r: np.asarray(r))
    with pytest.raises(OptionError, match=r"layer='fc'.*\['0', '1', '2', '3'\]"):
        xai.metrics.get("relative-representation-stability", layer="fc")(
            network(), X, np.zeros(X.shape), explainer=GradientTimesInput())


# ---- Explainiverse 0.15.2, which follows the paper's equations (copies of another predicted
# class left out of the max, the denominator floored at eps_min) ------------------------------

def tabular_network() -> torch.nn.Module:
    torch.manual_seed(6)
    return torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.ReLU(),
                               torch.nn.Linear(10, 3)).double().eval()


X_TABLE = np.random.default_rng(4).normal(size=(6, 6))


class PredictedProbabilities:
    """Explainiverse's model interface: ``predict_proba`` of one row."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def predict_proba(self, rows):
        with torch.no_grad():
            return torch.softmax(self.model(torch.as_tensor(rows)), 1).numpy()


def _explainiverse_explainer(model: torch.nn.Module):
    """Gradient × input of the predicted class as an Explainiverse explainer."""
    from explainiverse.core.explainer import BaseExplainer
    from explainiverse.core.explanation import Explanation

    class Gxi(BaseExplainer):
        def explain(self, instance, target_class=None):
            x = torch.as_tensor(np.asarray(instance).reshape(1, -1))
            values = GradientTimesInput()(self.model, x.numpy())[0]
            t = int(self.model(x).argmax(1)[0]) if target_class is None else target_class
            return Explanation("gxi", t, {"feature_attributions": {
                f"feature_{j}": float(v) for j, v in enumerate(values)}})

    return Gxi(model)


@pytest.mark.parametrize("name", ["relative-input-stability", "relative-output-stability",
                                  "relative-representation-stability"])
def test_equals_explainiverse_on_the_same_copies(name: str, monkeypatch) -> None:
    """Equal on the same copies, with a noise that changes some copies' class: both leave
    those out of the max."""
    robustness = pytest.importorskip("explainiverse.evaluation.robustness")
    model, n_copies = tabular_network(), 30
    explainer = GradientTimesInput()
    options = {"layer": "1"} if name == "relative-representation-stability" else {}
    res = xai.metrics.get(name, n_samples=n_copies, sigma=1.0, **options)(
        model, X_TABLE, np.zeros(X_TABLE.shape), explainer=explainer)
    valid = res.extras["n_valid_draws"]
    assert (valid < n_copies).any() and (valid > 4).all()  # some copies change class
    copies = explainer.seen[0][len(X_TABLE):].reshape(len(X_TABLE), n_copies, -1)
    row = iter(range(len(X_TABLE)))
    monkeypatch.setattr(robustness, "_generate_mixed_perturbations",
                        lambda *args, **kwargs: copies[next(row)])

    def hidden(x):
        with torch.no_grad():
            return model[:2](torch.as_tensor(np.reshape(x, (1, -1)))).numpy()

    def logits(x):
        with torch.no_grad():
            return model(torch.as_tensor(np.reshape(x, (1, -1)))).numpy()

    run = {"relative-input-stability": (robustness.compute_relative_input_stability, {}),
           "relative-output-stability": (robustness.compute_relative_output_stability,
                                         {"logit_fn": logits}),
           "relative-representation-stability": (
               robustness.compute_relative_representation_stability,
               {"representation_fn": hidden})}
    compute, extra = run[name]
    expected = [compute(_explainiverse_explainer(model), PredictedProbabilities(model), x,
                        n_perturbations=n_copies, noise_scale=1.0, epsilon_min=1e-6,
                        return_details=True, **extra) for x in X_TABLE]
    np.testing.assert_allclose(res.per_sample, [e["score"] for e in expected], rtol=1e-9)
    np.testing.assert_array_equal(valid, [e["n_valid"] for e in expected])



def test_a_layer_that_does_not_run_once_per_forward_pass_is_refused() -> None:
    """A module of the model that its forward never calls gives no representation."""
    class WithUnused(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.unused = network(), torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.net(x)

    with pytest.raises(InputError, match=r"layer='unused' ran 0 times in 1 forward passes.*"
                                         r"pass layer="):
        xai.metrics.get("relative-representation-stability", n_samples=2, layer="unused")(
            WithUnused(), X, np.zeros(X.shape), explainer=GradientTimesInput())
