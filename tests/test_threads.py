"""Explaining from several threads: values equal a single-threaded run, and a torch model left
in training mode is evaluated in eval mode by every thread and handed back in training mode."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import xai
from xai.models import eval_mode

RNG = np.random.default_rng(0)
X = RNG.normal(size=(6, 5))
BG = RNG.normal(size=(20, 5))


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                              torch.nn.Linear(32, 2)).double()
    return net.train()  # left in training mode: dropout would make every call random


def _explain(net) -> np.ndarray:
    return xai.explain(net, X, method="kernelshap", background=BG, budget=4000, seed=3,
                       progress=False).values


def _in_threads(fn, n: int) -> list:
    return _in_parallel([fn] * n)


def _in_parallel(fns: list) -> list:
    """Each of ``fns`` in its own thread, started together; their results in order."""
    barrier = threading.Barrier(len(fns))
    out: list = [None] * len(fns)
    errors: list = []

    def run(i):
        try:
            barrier.wait()
            out[i] = fns[i]()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return out


def test_threads_explaining_one_training_module_equal_a_single_thread():
    net = _net()
    expected = _explain(net)
    assert net.training
    for _ in range(3):
        for values in _in_threads(lambda: _explain(net), 4):
            np.testing.assert_array_equal(values, expected)
    assert all(m.training for m in net.modules())


def test_nested_sessions_keep_eval_mode_until_the_outer_ends():
    net = _net()
    with eval_mode(net):
        with eval_mode(net[0], net):
            pass
        assert not any(m.training for m in net.modules())
    assert all(m.training for m in net.modules())


def test_a_session_ending_in_another_thread_leaves_this_one_in_eval_mode():
    net = _net()
    entered, leave = threading.Event(), threading.Event()

    def other():
        with eval_mode(net):
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    entered.wait(10)
    with eval_mode(net):
        leave.set()
        thread.join()  # the other session ended first
        assert not any(m.training for m in net.modules())
    assert all(m.training for m in net.modules())


def test_eval_mode_restores_mixed_flags_after_an_error():
    net = _net()
    net[2].eval()  # the dropout alone in eval mode
    with pytest.raises(RuntimeError), eval_mode(net):
        assert not torch.is_grad_enabled()
        raise RuntimeError("inside")
    assert [m.training for m in net] == [True, True, False, True]
    assert torch.is_grad_enabled()


def test_eval_mode_with_grad_keeps_gradients():
    net = _net()
    with eval_mode(net, grad=True):
        out = net(torch.ones(1, 5, dtype=torch.float64)).sum()
        out.backward()
    assert net[0].weight.grad is not None


def test_one_explainer_explains_different_rows_from_several_threads():
    """An Explainer keeps nothing of a call on itself: threads sharing one explain their own
    rows (each row its own predicted class of a three-class model) as a single thread does."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(5, 3)).double()
    explainer = xai.Explainer.from_preset("exact-shap", background=BG, progress=False)
    parts = [RNG.normal(size=(4, 5)) for _ in range(4)]
    expected = [explainer.explain(net, part) for part in parts]
    for _ in range(3):
        got = _in_parallel([lambda part=part: explainer.explain(net, part) for part in parts])
        for e, want in zip(got, expected):
            np.testing.assert_array_equal(e.values, want.values)
            np.testing.assert_array_equal(e.extras["target"], want.extras["target"])
