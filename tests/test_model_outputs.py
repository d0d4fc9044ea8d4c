"""Model outputs: containers (a dict or an object holding ``logits``, a tuple) give the same
explanation as the bare logits, and outputs that cannot be read as numbers are ``ModelError``s."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai
from xai.errors import ModelError

RNG = np.random.default_rng(0)


class _Out:
    def __init__(self, logits):
        self.logits = logits


class _Wrapped(torch.nn.Module):
    def __init__(self, wrap):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2).double()
        self.wrap = wrap

    def forward(self, x):
        return self.wrap(self.lin(x))


@pytest.mark.parametrize("wrap", [lambda t: {"logits": t, "hidden": t * 0},
                                  lambda t: _Out(t), lambda t: (t, None)],
                         ids=["dict", "modeloutput", "tuple"])
def test_container_outputs_are_unwrapped(wrap):
    X = RNG.normal(size=(2, 3))
    plain = _Wrapped(lambda t: t)
    wrapped = _Wrapped(wrap)
    wrapped.lin = plain.lin
    a = xai.explain(plain, X, "occlusion", baseline=0.0, target=1, progress=False)
    b = xai.explain(wrapped, X, "occlusion", baseline=0.0, target=1, progress=False)
    np.testing.assert_allclose(a.values, b.values)


@pytest.mark.parametrize("out", [lambda n: np.array(["a"] * n), lambda n: {"x": "a"},
                                 lambda n: object()], ids=["strings", "dict", "object"])
def test_non_numeric_outputs_are_model_errors(out):
    with pytest.raises(ModelError, match="cannot be read as numbers") as info:
        xai.explain(lambda x: out(len(x)), RNG.normal(size=(2, 3)), "occlusion", baseline=0.0,
                    progress=False)
    assert info.value.inputs is not None
