"""TCAV: concept activation vectors, directional derivatives and the statistical test.

Kim et al. 2018, "Interpretability Beyond Feature Attribution: Quantitative Testing with
Concept Activation Vectors (TCAV)"; the test follows ACE (Ghorbani et al. 2019).

* :func:`layer_capture` — context manager that hooks a named module of a torch model, puts the
  model in eval mode and undoes both on exit (also when an error is raised).
* :func:`layer_activations` / :func:`layer_gradients` — activations at the layer and the
  gradient of a target logit with respect to them (flattened, batched).
* :func:`train_cav` — one CAV: a seeded linear classifier, concept vs random activations,
  classes balanced by subsampling, 1/3 stratified hold-out accuracy; the unit normal pointing
  towards the concept.
* :func:`tcav` — scores of several concepts against ``n_random`` random counterparts plus a
  null (random vs random) concept, and a two-sided t-test of each concept against the null.

Everything here works on plain numpy arrays except the three torch helpers; captum is not
needed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from xai.errors import InputError, TargetError, XaiError

__all__ = [
    "CAV",
    "TCAVResult",
    "layer_activations",
    "layer_capture",
    "layer_gradients",
    "layer_names",
    "null_distribution_test",
    "t_test",
    "tcav",
    "train_cav",
]

CLASSIFIERS = ("sgd", "logistic")
TESTS = ("paired", "welch", "null-distribution")


# --------------------------------------------------------------------------- torch helpers


def layer_names(model) -> list[str]:
    """Names of the hookable modules of ``model`` (``named_modules`` without the root)."""
    return [name for name, _ in model.named_modules() if name]


def _get_layer(model, layer: str):
    """The module called ``layer``; :class:`InputError` listing the names when it is unknown."""
    modules = dict(model.named_modules())
    if not isinstance(layer, str) or not layer or layer not in modules:
        names = layer_names(model)
        shown = ", ".join(names[:20])
        more = f" (+{len(names) - 20} more)" if len(names) > 20 else ""
        raise InputError(f"layer {layer!r} not found; available: {shown}{more}")
    return modules[layer]


@contextmanager
def layer_capture(model, layer: str, *, grad: bool = False) -> Iterator[dict]:
    """Hook the module ``layer`` of ``model``; yield a dict that receives its output.

    Inside the block the model is in eval mode and every forward pass stores the module's
    output under ``store["output"]``. With ``grad=True`` the output is replaced by a detached
    leaf that requires grad (so gradients w.r.t. the activations exist even when the
    parameters are frozen). On exit the hook is removed and the ``training`` flag of every
    submodule is restored, also when the block raises.
    """
    import torch

    from ..models import eval_mode

    module = _get_layer(model, layer)
    store: dict = {}

    def hook(_module, _inputs, output):
        if not hasattr(output, "detach"):
            raise XaiError(
                f"layer {layer!r} returns {type(output).__name__}, not a tensor; "
                "pick a module with a single tensor output"
            )
        if grad:
            leaf = output.detach().requires_grad_(True)
            store["output"] = leaf
            return leaf.clone()  # a non-leaf, so later in-place ops (ReLU(inplace)) work
        store["output"] = output.detach()
        return None

    handle = module.register_forward_hook(hook)
    try:
        with eval_mode(model, grad=torch.is_grad_enabled()):
            yield store
    finally:
        handle.remove()


def _model_device_dtype(model):
    import torch

    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def _as_tensor(x, device, dtype):
    import torch

    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), device=device, dtype=dtype)


def layer_activations(model, layer: str, inputs, *, batch_size: int = 64,
                      return_logits: bool = False):
    """Activations of ``model`` at ``layer`` for ``inputs``: array ``(n, *activation_shape)``.

    Batched, ``no_grad``, eval mode (restored on exit). With ``return_logits=True`` also
    returns the model outputs ``(n, k)``.
    """
    import torch

    device, dtype = _model_device_dtype(model)
    acts, logits = [], []
    with layer_capture(model, layer) as store, torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            out = model(_as_tensor(inputs[start:start + batch_size], device, dtype))
            acts.append(store["output"].float().cpu().numpy())
            logits.append(out.float().reshape(out.shape[0], -1).cpu().numpy())
    if not acts:
        raise InputError("no inputs to compute activations of")
    a = np.concatenate(acts)
    _check_finite(a, f"activations at {layer!r}")
    return (a, np.concatenate(logits)) if return_logits else a


def layer_gradients(model, layer: str, inputs, target: int, *, batch_size: int = 64):
    """Activations and gradients of the ``target`` logit w.r.t. them, both ``(n, D)`` flattened.

    One backward pass per batch: the logits of a batch are summed, which gives per-input
    gradients because in eval mode each output row depends on its own input only.
    """
    import torch

    device, dtype = _model_device_dtype(model)
    acts, grads = [], []
    with layer_capture(model, layer, grad=True) as store, torch.enable_grad():
        for start in range(0, len(inputs), batch_size):
            store.clear()
            out = model(_as_tensor(inputs[start:start + batch_size], device, dtype))
            out = out.reshape(out.shape[0], -1)
            if not 0 <= target < out.shape[1]:
                raise TargetError(f"target {target} out of range for {out.shape[1]} outputs")
            a = store.get("output")
            if a is None:
                raise XaiError(f"layer {layer!r} was not called in the forward pass")
            (g,) = torch.autograd.grad(out[:, target].sum(), a, allow_unused=True)
            if g is None:
                raise XaiError(f"no gradient of the target logit reaches {layer!r}")
            acts.append(a.detach().float().reshape(a.shape[0], -1).cpu().numpy())
            grads.append(g.detach().float().reshape(g.shape[0], -1).cpu().numpy())
    if not grads:
        raise InputError("no inputs to compute gradients of")
    a, g = np.concatenate(acts), np.concatenate(grads)
    _check_finite(g, f"gradients at {layer!r}")
    return a, g


def _check_finite(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        raise XaiError(f"non-finite values in the {what}; check the model and the inputs")


# ------------------------------------------------------------------------------------ CAVs


@dataclass
class CAV:
    """A concept activation vector: unit ``vector`` pointing towards the concept."""

    vector: np.ndarray
    accuracy: float
    intercept: float = 0.0


def _classifier(kind: str, seed: int):
    if kind == "sgd":
        from sklearn.linear_model import SGDClassifier

        return SGDClassifier(loss="hinge", alpha=0.01, max_iter=1000, tol=1e-3,
                             random_state=seed)
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=1000, random_state=seed)
    raise InputError(f"unknown CAV classifier {kind!r}; use one of {', '.join(CLASSIFIERS)}")


def train_cav(concept: np.ndarray, random: np.ndarray, *, classifier: str = "sgd",
              seed: int = 0) -> CAV:
    """Fit one CAV on flattened activations ``concept (m, D)`` vs ``random (s, D)``.

    Classes are balanced by subsampling the larger one (seeded); a stratified third is held
    out for the accuracy (the training accuracy is used when a class has < 3 rows). The CAV is
    the classifier's normal, oriented towards the concept and scaled to unit L2 norm.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split

    concept = np.asarray(concept, dtype=np.float64).reshape(len(concept), -1)
    random = np.asarray(random, dtype=np.float64).reshape(len(random), -1)
    if concept.shape[1] != random.shape[1]:
        raise InputError(f"concept activations have {concept.shape[1]} dimensions but random "
                         f"ones {random.shape[1]}")
    if len(concept) < 1 or len(random) < 1:
        raise InputError("a CAV needs at least one concept and one random example")
    rng = np.random.default_rng(seed)
    m = min(len(concept), len(random))
    concept = concept[np.sort(rng.choice(len(concept), m, replace=False))]
    random = random[np.sort(rng.choice(len(random), m, replace=False))]
    X = np.concatenate([concept, random])
    y = np.r_[np.ones(m, dtype=int), np.zeros(m, dtype=int)]
    clf = _classifier(classifier, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if m >= 3:
            X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=1 / 3, stratify=y,
                                                      random_state=seed)
        else:
            X_tr, X_te, y_tr, y_te = X, X, y, y
        clf.fit(X_tr, y_tr)
    accuracy = float(np.mean(clf.predict(X_te) == y_te))
    w = np.asarray(clf.coef_, dtype=np.float64).reshape(-1)
    if clf.classes_[1] != 1:  # coef_ points towards classes_[1]
        w = -w
    norm = float(np.linalg.norm(w))
    if norm == 0 or not np.isfinite(norm):
        return CAV(np.zeros_like(w), accuracy, 0.0)
    return CAV(w / norm, accuracy, float(np.ravel(clf.intercept_)[0]) / norm)


# ------------------------------------------------------------------------------------- test


def t_test(scores: np.ndarray, null: np.ndarray, *, test: str = "paired") -> float:
    """Two-sided p-value of ``scores`` vs ``null`` (paired t-test or Welch's).

    Pairs (paired) or entries (welch) with NaN are dropped. Degenerate cases without spread
    give 1.0 when the means agree and 0.0 when they differ; fewer than 2 usable values give NaN.
    """
    from scipy import stats

    if test not in TESTS[:2]:
        raise InputError(f"unknown test {test!r} for t_test; use 'paired' or 'welch' (the "
                         "'null-distribution' test is null_distribution_test)")
    scores, null = np.asarray(scores, float), np.asarray(null, float)
    if test == "paired":
        ok = np.isfinite(scores) & np.isfinite(null)
        diff = scores[ok] - null[ok]
        if diff.size < 2:
            return float("nan")
        if np.ptp(diff) == 0:
            return 1.0 if diff[0] == 0 else 0.0
        with warnings.catch_warnings():  # near-identical data: scipy's precision warning
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(stats.ttest_rel(scores[ok], null[ok]).pvalue)
    a, b = scores[np.isfinite(scores)], null[np.isfinite(null)]
    if a.size < 2 or b.size < 2:
        return float("nan")
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 1.0 if a[0] == b[0] else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def null_distribution_test(concept_mean: float, null_means: np.ndarray) -> float:
    """Two-sided p-value of one concept's mean TCAV score against the mean scores of random
    *null concepts* (random sets scored as concepts, the same way): a t prediction interval,
    ``t = (m − mean(m0)) / (sd(m0) · sqrt(1 + 1/M))`` with ``M − 1`` degrees of freedom.

    Unlike the paired t-test over random counterparts, this accounts for the concept set being
    one fixed sample: under the null a random concept's mean and the null concepts' means are
    exchangeable, so the test holds its level (the paired test treats the ``n_random`` scores
    of one concept set as independent and rejects a random concept far more often than
    ``alpha``). NaN means are dropped; fewer than 2 usable null means give NaN.
    """
    from scipy import stats

    m0 = np.asarray(null_means, float)
    m0 = m0[np.isfinite(m0)]
    if not np.isfinite(concept_mean) or m0.size < 2:
        return float("nan")
    sd = float(np.std(m0, ddof=1))
    if sd == 0:
        return 1.0 if concept_mean == m0[0] else 0.0
    t = (float(concept_mean) - float(m0.mean())) / (sd * np.sqrt(1 + 1 / m0.size))
    return float(2 * stats.t.sf(abs(t), df=m0.size - 1))


@dataclass
class TCAVResult:
    """TCAV scores of ``r`` concepts over ``n_random`` random counterparts.

    ``scores (r, n_random)`` (NaN where a CAV was discarded), ``null_scores (n_random,)``,
    ``accuracies (r, n_random)``, ``null_accuracies``, ``p_values``, ``significant``,
    ``direction`` (+1 above the null, -1 below, 0 equal), ``mean``/``std`` over random sets,
    ``null_mean``; ``per_input (n_test, r)`` = fraction of a concept's CAVs with a positive
    directional derivative at each test input (its mean over inputs is ``mean``);
    ``derivatives (n_test, r)`` = mean directional derivative; ``cavs (r, n_random, D)``.
    """

    scores: np.ndarray
    null_scores: np.ndarray
    accuracies: np.ndarray
    null_accuracies: np.ndarray
    p_values: np.ndarray
    significant: np.ndarray
    direction: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    null_mean: float
    per_input: np.ndarray
    derivatives: np.ndarray
    cavs: np.ndarray
    alpha: float
    test: str
    null_concept_means: np.ndarray | None = None


def _score(grads: np.ndarray, cav: CAV) -> tuple[float, np.ndarray]:
    d = grads @ cav.vector
    return float(np.mean(d > 0)), d


def _cav_seed(seed: int, i: int, j: int) -> int:
    """Seed of the CAV of concept ``i`` against random set ``j`` (independent streams)."""
    return int(np.random.SeedSequence([seed, i, j]).generate_state(1)[0])


class _RandomRuns(NamedTuple):
    """One concept against every random set: its CAV and TCAV score per set."""

    scores: np.ndarray  # (n_random,), NaN where the CAV was discarded
    accuracies: np.ndarray  # (n_random,)
    cavs: np.ndarray  # (n_random, D)
    positive: np.ndarray  # (n_random, n_test): directional derivative > 0 (NaN if discarded)
    derivatives: np.ndarray  # (n_random, n_test)


def _check_tcav_options(test: str, classifier: str, correction: str | None,
                        n_random: int) -> None:
    if test not in TESTS:
        raise InputError(f"unknown test {test!r}; use one of {', '.join(TESTS)}")
    if classifier not in CLASSIFIERS:
        raise InputError(f"unknown CAV classifier {classifier!r}; use one of "
                         f"{', '.join(CLASSIFIERS)}")
    if correction not in (None, "none", "bonferroni"):
        raise InputError(f"unknown correction {correction!r}; use None or 'bonferroni'")
    if n_random < 2:
        raise InputError(f"the t-test needs n_random ≥ 2 (got {n_random})")


def _flat_gradients(gradients: np.ndarray, activation_sets: Sequence[np.ndarray]) -> np.ndarray:
    """Gradients as ``(n_test, D)`` float64, checked against the dimension of every set."""
    grads = np.asarray(gradients, dtype=np.float64)
    grads = grads.reshape(len(grads), -1)
    if len(grads) < 1:
        raise InputError("TCAV needs at least one test input")
    D = grads.shape[1]
    for i, c in enumerate(activation_sets):
        if np.asarray(c).reshape(len(c), -1).shape[1] != D:
            raise InputError(f"activation set {i} has a different dimension than the "
                             f"gradients ({D})")
    return grads


def _against_random_sets(grads: np.ndarray, concept: np.ndarray | None,
                         random_sets: Sequence[np.ndarray], index: int, *, classifier: str,
                         seed: int, min_cav_accuracy: float) -> _RandomRuns:
    """CAVs of ``concept`` against each random set and their TCAV scores (Kim et al. 2018).

    ``concept=None`` is the null concept: random set ``j`` against set ``j + 1`` (cyclically).
    A CAV with hold-out accuracy below ``min_cav_accuracy`` is discarded (NaN)."""
    n_random = len(random_sets)
    n_test, D = grads.shape
    sc = np.full(n_random, np.nan)
    acc = np.full(n_random, np.nan)
    vecs = np.zeros((n_random, D), dtype=np.float32)
    pos = np.zeros((n_random, n_test))
    der = np.zeros((n_random, n_test))
    for j, rand in enumerate(random_sets):
        if concept is None:
            rand, conc = random_sets[(j + 1) % n_random], rand
        else:
            conc = concept
        cav = train_cav(conc, rand, classifier=classifier, seed=_cav_seed(seed, index, j))
        acc[j] = cav.accuracy
        if cav.accuracy < min_cav_accuracy:
            pos[j], der[j] = np.nan, np.nan
            continue
        sc[j], d = _score(grads, cav)
        vecs[j], pos[j], der[j] = cav.vector, d > 0, d
    return _RandomRuns(sc, acc, vecs, pos, der)


def _random_concept_means(grads: np.ndarray, random_sets: Sequence[np.ndarray], r: int, *,
                          classifier: str, seed: int, min_cav_accuracy: float) -> list[float]:
    """Mean TCAV of each random set scored as a concept against all the other random sets:
    samples of the null distribution of a concept's mean score."""
    means = []
    for j, rand in enumerate(random_sets):
        others = [s_ for k, s_ in enumerate(random_sets) if k != j]
        sc = np.full(len(others), np.nan)
        for k, other in enumerate(others):
            cav = train_cav(rand, other, classifier=classifier,
                            seed=_cav_seed(seed, r + 1 + j, k))
            if cav.accuracy >= min_cav_accuracy:
                sc[k] = _score(grads, cav)[0]
        means.append(np.nanmean(sc) if np.isfinite(sc).any() else np.nan)
    return means


def tcav(gradients: np.ndarray, concepts: Sequence[np.ndarray],
         random_sets: Sequence[np.ndarray], null: np.ndarray | None = None, *,
         classifier: str = "sgd", seed: int = 0, test: str = "paired", alpha: float = 0.01,
         correction: str | None = None, min_cav_accuracy: float = 0.0) -> TCAVResult:
    """TCAV of each concept against each random set, tested against a null concept.

    ``gradients (n_test, D)``: gradients of the target logit w.r.t. the flattened activations
    of the test inputs. ``concepts``: ``r`` arrays ``(m_i, D)``; ``random_sets``: ``n_random``
    arrays ``(s_j, D)``; ``null``: one more random set treated as a concept (when ``None``,
    random set ``j`` is scored against set ``j + 1``, cyclically). Score = fraction of test
    inputs with ``gradient · cav > 0``. CAVs with hold-out accuracy below ``min_cav_accuracy``
    are discarded (score NaN). ``correction="bonferroni"`` multiplies p-values by ``r``.

    ``test``: ``"paired"`` (ACE's paired t-test of the concept's scores vs the null's over
    the same random sets, the default for parity), ``"welch"`` (unpaired), or
    ``"null-distribution"`` (:func:`null_distribution_test`: the concept's mean against the
    means of every random set scored as a concept against the others; calibrated, costs
    ``n_random·(n_random − 1)`` more CAVs).
    """
    n_random = len(random_sets)
    _check_tcav_options(test, classifier, correction, n_random)
    grads = _flat_gradients(gradients, list(concepts) + list(random_sets))
    r, (n_test, D) = len(concepts), grads.shape
    cav_options = {"classifier": classifier, "seed": seed, "min_cav_accuracy": min_cav_accuracy}

    scores = np.full((r, n_random), np.nan)
    accs = np.full((r, n_random), np.nan)
    cavs = np.zeros((r, n_random, D), dtype=np.float32)
    per_input = np.full((n_test, r), np.nan)
    derivatives = np.full((n_test, r), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of all-NaN columns
        for i, concept in enumerate(concepts):
            runs = _against_random_sets(grads, concept, random_sets, i, **cav_options)
            scores[i], accs[i], cavs[i] = runs.scores, runs.accuracies, runs.cavs
            per_input[:, i] = np.nanmean(runs.positive, axis=0)
            derivatives[:, i] = np.nanmean(runs.derivatives, axis=0)
        null_runs = _against_random_sets(grads, null, random_sets, r, **cav_options)
        null_scores, null_acc = null_runs.scores, null_runs.accuracies
        mean = np.nanmean(scores, axis=1) if r else np.zeros(0)
        std = np.nanstd(scores, axis=1, ddof=1) if r else np.zeros(0)
        null_mean = float(np.nanmean(null_scores))

    null_concept_means = None
    if test == "null-distribution":
        means = _random_concept_means(grads, random_sets, r, **cav_options)
        if null is not None:
            means.append(null_mean)
        null_concept_means = np.asarray(means, float)
        p = np.array([null_distribution_test(mean[i], null_concept_means) for i in range(r)])
    else:
        p = np.array([t_test(scores[i], null_scores, test=test) for i in range(r)])
    if correction == "bonferroni":
        p = np.minimum(p * max(r, 1), 1.0)
    significant = np.nan_to_num(p, nan=1.0) <= alpha
    centre = null_mean if null_concept_means is None else float(np.nanmean(null_concept_means))
    direction = np.sign(np.nan_to_num(mean - centre)).astype(np.int8)
    return TCAVResult(scores, null_scores, accs, null_acc, p, significant, direction, mean,
                      std, null_mean, per_input, derivatives, cavs, float(alpha), test,
                      null_concept_means)
