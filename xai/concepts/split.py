"""Split a torch model ``f = h ∘ g`` at a named layer.

Resolution order:

(a) the layer is reached through nested ``nn.Sequential`` chains: the chains are split, and
    ``g``/``h`` are new ``nn.Sequential`` containers that *share* the user's modules (nothing
    is copied, nothing is modified);
(b) otherwise ``torch.fx`` traces the model and cuts the graph at the layer's output node; the
    cut is valid only when no later node reads a value computed before the cut (no skip
    connection crosses it, the input is not reused);
(c) otherwise an :class:`~xai.errors.InputError` asks for ``g=`` and ``h=``.

No hooks are registered and the training flags of every module are restored after any
evaluation (:func:`eval_session`).
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable

import torch
from torch import nn

from ..errors import InputError
from ..models import eval_mode

__all__ = ["check_split", "eval_session", "layer_names", "split_model"]


def layer_names(model: nn.Module) -> list[str]:
    """Names of the model's submodules (``model.named_modules()``, root excluded)."""
    return [name for name, _ in model.named_modules() if name]


def _unknown_layer(model: nn.Module, layer: str) -> InputError:
    names = layer_names(model)
    shown = ", ".join(names[:12]) + (f", … (+{len(names) - 12} more)" if len(names) > 12 else "")
    close = difflib.get_close_matches(layer, names, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return InputError(f"layer {layer!r} not found; available: {shown}.{hint}")


class _NotSequential(Exception):
    pass


def _seq_split(module: nn.Module, parts: list[str]) -> tuple[list[nn.Module], list[nn.Module]]:
    if not parts:
        return [module], []
    if not isinstance(module, nn.Sequential):
        raise _NotSequential
    names = list(module._modules)
    children = list(module._modules.values())
    i = names.index(parts[0])
    g_in, h_in = _seq_split(children[i], parts[1:])
    return children[:i] + g_in, h_in + children[i + 1:]


def _as_module(mods: list[nn.Module]) -> nn.Module:
    if not mods:
        return nn.Identity()
    return mods[0] if len(mods) == 1 else nn.Sequential(*mods)


def _fx_split(model: nn.Module, layer: str) -> tuple[nn.Module, nn.Module]:
    from torch import fx

    why = "a skip connection crosses it (or the model is not traceable)"
    try:
        traced = fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means "cannot cut here"
        raise InputError(f"cannot split at {layer!r}: the model is not traceable by torch.fx "
                         f"({type(exc).__name__}: {exc}); pass g= and h=") from None
    nodes = list(traced.graph.nodes)
    cut = [i for i, n in enumerate(nodes) if n.op == "call_module" and n.target == layer]
    if len(cut) != 1:
        what = "is called more than once" if cut else "is not a leaf call of the traced graph"
        raise InputError(f"cannot split at {layer!r}: the module {what}; pass g= and h=")
    k = cut[0]
    cut_node = nodes[k]
    before = {n for n in nodes[:k] if n.op != "get_attr"}
    for n in nodes[k + 1:]:
        for a in n.all_input_nodes:
            if a in before:
                raise InputError(f"cannot split at {layer!r}: {why}; pass g= and h= "
                                 f"(node {n.name!r} reads {a.name!r} from before the cut)")
    # g: nodes up to the cut, returning the cut node's value
    g_graph = fx.Graph()
    env: dict = {}
    for n in nodes[:k + 1]:
        env[n] = g_graph.node_copy(n, lambda a: env[a])
    g_graph.output(env[cut_node])
    # h: a placeholder for the cut value, the get_attr nodes, then the rest
    h_graph = fx.Graph()
    env = {cut_node: h_graph.placeholder("activations")}
    for n in nodes:
        if n.op == "get_attr":
            env[n] = h_graph.node_copy(n, lambda a: env[a])
    for n in nodes[k + 1:]:
        env[n] = h_graph.node_copy(n, lambda a: env[a])
    g = fx.GraphModule(traced, g_graph)
    h = fx.GraphModule(traced, h_graph)
    g.graph.eliminate_dead_code()
    h.graph.eliminate_dead_code()
    g.recompile()
    h.recompile()
    return g, h


def split_model(model: nn.Module, layer: str) -> tuple[nn.Module, nn.Module]:
    """Return ``(g, h)`` with ``g`` = the model up to and including ``layer``'s output and
    ``h`` the rest, so that ``h(g(x)) == model(x)``. The user's modules are shared, never
    modified."""
    if not isinstance(model, nn.Module):
        raise InputError(f"split_model needs a torch.nn.Module, got {type(model).__name__}; "
                         "pass g= and h= instead")
    if not isinstance(layer, str) or layer not in dict(model.named_modules()) or not layer:
        raise _unknown_layer(model, str(layer))
    try:
        g_mods, h_mods = _seq_split(model, layer.split("."))
        return _as_module(g_mods), _as_module(h_mods)
    except _NotSequential:
        pass
    return _fx_split(model, layer)


def eval_session(*modules) -> contextlib.AbstractContextManager[None]:
    """Eval mode and no grad for the torch modules among ``modules``; every module's training
    flag is restored on exit (also after an error)."""
    return eval_mode(*modules)


def check_split(g: Callable, h: Callable, model: Callable, x: torch.Tensor, *,
                rtol: float = 1e-4, atol: float = 1e-5) -> float:
    """Check ``h(g(x)) ≈ model(x)`` on a batch; raise naming the largest gap. Returns the gap."""
    with eval_session(g, h, model):
        ref = torch.as_tensor(model(x))
        out = torch.as_tensor(h(g(x)))
    if out.shape != ref.shape:
        raise InputError(f"h(g(x)) has shape {tuple(out.shape)} but model(x) has shape "
                         f"{tuple(ref.shape)}; check the split")
    gap = float((out.double() - ref.double()).abs().max()) if ref.numel() else 0.0
    if not torch.allclose(out.double(), ref.double(), rtol=rtol, atol=atol):
        raise InputError(f"h(g(x)) differs from model(x) by up to {gap:.3g}; check the split")
    return gap
