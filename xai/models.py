"""Model adapters: one batched, counting function from inputs to a 2-D output ``(rows, k)``.

Every adapter takes and returns torch tensors (the game builds inputs with torch on the model's
device); scikit-learn estimators and plain callables receive numpy arrays, converted without a
copy on the CPU. Every row passed to the model is counted in :attr:`Model.evaluations`.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from .devices import check_device, placed, refuse_device
from .errors import InputError, ModelError, OptionError

OUTPUT_KINDS = ("logits", "probability", "raw")

#: a model call's rows are padded (its last row repeated, the extra outputs dropped) to a
#: multiple of CALL_ROW_MULTIPLE: BLAS kernels (MKL, OpenBLAS, oneDNN) round a row's output
#: differently in a call's last ``rows mod 8`` rows and in calls of a few rows, so unpadded, a
#: row's value would depend on the rows it is evaluated with (a block of explicands, a Ray task)
CALL_ROW_MULTIPLE = 16
#: :func:`rowwise_matmul` adds its inner dimension in chunks of this many terms: BLAS splits a
#: longer inner dimension between threads for some shapes (MKL from 1,024 terms on an Intel
#: host, once rows and columns are padded to 16), and picks other kernels, which round
#: differently, for large products even on one thread; either would make a sum depend on the
#: number of threads (a Ray worker's one against a laptop's eight) and on the other rows
INNER_CHUNK = 256
#: :func:`sigmoid` works in pieces of this many elements: a multiple of every vector width and
#: below torch's parallel grain (32,768), so that each piece runs on one thread with no tail
SIGMOID_PIECE = 2**14

_EVAL_LOCK = threading.Lock()
_EVAL_HOLDS: dict[torch.nn.Module, list] = {}  # submodule -> [sessions holding it, its flag]


@contextlib.contextmanager
def eval_mode(*modules: Any, grad: bool = False) -> Iterator[None]:
    """Eval mode for the torch modules among ``modules`` (others are ignored), and no grad
    unless ``grad``; every submodule's training flag is restored on exit, also after an error.

    Sessions are counted per submodule, so sessions that overlap, in one thread or several,
    see eval mode until the last one ends, which restores the flags the first one found."""
    roots = [m for m in modules if isinstance(m, torch.nn.Module)]
    held = []
    with _EVAL_LOCK:
        for root in roots:
            subs = list(root.modules())
            if any(s.training for s in subs):
                flags = [s.training for s in subs]
                root.eval()
            else:
                flags = [False] * len(subs)
            for sub, flag in zip(subs, flags):
                entry = _EVAL_HOLDS.setdefault(sub, [0, flag])
                entry[0] += 1
                held.append(sub)
    try:
        with torch.enable_grad() if grad else torch.no_grad():
            yield
    finally:
        with _EVAL_LOCK:
            for sub in held:
                entry = _EVAL_HOLDS[sub]
                entry[0] -= 1
                if entry[0] == 0:
                    del _EVAL_HOLDS[sub]
                    sub.training = entry[1]


class Model:
    """Base adapter. Subclasses implement :meth:`_forward` on one batch.

    Attributes
    ----------
    output_kind : ``"logits"`` (softmax/sigmoid gives probabilities), ``"probability"`` or
        ``"raw"`` (regression or scores with no probability scale).
    evaluations : rows evaluated so far.
    """

    output_kind: str = "raw"
    is_classifier: bool = False
    #: calls padded to whole multiples of :data:`CALL_ROW_MULTIPLE` rows (torch modules and
    #: scikit-learn estimators; a plain function sees exactly the rows asked about)
    pads_calls: bool = False
    #: a padded call's whole multiples of :data:`CALL_ROW_MULTIPLE` rows go to the model as
    #: they are and its last rows as a call of their own, padded (torch modules: no copy of a
    #: large call's inputs); else the call is padded as a whole (scikit-learn estimators, whose
    #: fixed cost per call exceeds the copy)
    splits_padding: bool = False

    def __init__(self, *, batch_size: int | None = None, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu") -> None:
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = torch.device(device)
        self.evaluations = 0
        self.n_outputs: int | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Context in which the model is evaluated (eval mode, no grad); undone on exit."""
        yield

    def placement(self) -> contextlib.AbstractContextManager[None]:
        """Context around a whole explanation or metric: the model on :attr:`device` (a
        torch module given ``device=``, moved back on exit); nothing for other models."""
        return contextlib.nullcontext()

    def _forward(self, x: torch.Tensor) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _pieces(self, rows: int, step: int) -> Iterator[tuple[int, int]]:
        """``(start, rows)`` of each model call: ``step`` rows at a time, a call that is
        padded split in two when :attr:`splits_padding`."""
        for start in range(0, rows, step):
            n = min(step, rows - start)
            head = n - n % CALL_ROW_MULTIPLE
            if self.splits_padding and self.pads_calls and 0 < head < n and \
                    _pads(n - head, self.batch_size):
                yield start, head
                yield start + head, n - head
            else:
                yield start, n

    def __call__(self, x: torch.Tensor, *, chunk: int | None = None,
                 explicands: np.ndarray | None = None, batch: int | None = None) -> torch.Tensor:
        """Evaluate rows ``x`` (batched by ``batch_size``, else by ``batch``, else all at
        once), returning ``(rows, k)`` float64.

        ``chunk`` and ``explicands`` only serve error messages.
        """
        rows = x.shape[0]
        step = self.batch_size or batch or max(rows, 1)
        out = None  # (rows, k) float64; the calls' outputs are written into it when split
        for start, n in self._pieces(rows, step):
            part = x[start:start + n]
            pad = self.pads_calls and _pads(n, self.batch_size)
            _PADDING.rows = -(-n // CALL_ROW_MULTIPLE) * CALL_ROW_MULTIPLE - n if pad else 0
            try:
                got = self._forward(_padded(part, self.batch_size) if pad else part)
            except Exception as exc:  # the model raised: say where
                raise ModelError(
                    f"the model raised {type(exc).__name__}: {exc} ({_where(chunk)}, explicands "
                    f"{_fmt_idx(explicands)}, input batch shape {tuple(part.shape)}, dtype "
                    f"{part.dtype}). The inputs of this chunk are in err.inputs.",
                    inputs=part,
                ) from exc
            finally:
                _PADDING.rows = 0
            got = _as_2d(got, -(-n // CALL_ROW_MULTIPLE) * CALL_ROW_MULTIPLE if pad else n,
                         chunk, explicands, part)[:n]
            if start == 0 and n == rows:
                out = got if got.dtype == torch.float64 else got.to(torch.float64)
            else:
                if out is None:
                    out = torch.empty((rows, got.shape[1]), dtype=torch.float64)
                elif got.shape[1] != out.shape[1]:
                    raise ModelError(
                        f"the model returned {got.shape[1]} outputs per row for rows "
                        f"{start}..{start + n - 1} of {_where(chunk)} but {out.shape[1]} for "
                        f"the rows before; it must return the same number of outputs for every "
                        "row. The inputs of this call are in err.inputs.", inputs=part)
                out[start:start + n].copy_(got)  # converts the dtype on the way
            self.evaluations += n
        if self.n_outputs is None:
            self.n_outputs = out.shape[1]
        elif out.shape[1] != self.n_outputs:
            raise ModelError(
                f"the model returned {out.shape[1]} outputs per row in {_where(chunk)} "
                f"(explicands {_fmt_idx(explicands)}) but {self.n_outputs} before; it must return "
                "the same number of outputs for every row. The inputs of this chunk are in "
                "err.inputs.", inputs=x)
        # a sum is finite when every term is (one pass, no temporary); only a non-finite sum
        # (or an overflowing one) pays for the element-wise check
        if not math.isfinite(out.sum().item()) and not bool(torch.isfinite(out).all()):
            bad = ~torch.isfinite(out).all(dim=1)
            raise ModelError(
                f"the model returned NaN or inf for {int(bad.sum())} of {rows} rows in "
                f"{_where(chunk)} (explicands {_fmt_idx(explicands)}). Check the model on these "
                "inputs; they are in err.inputs.", inputs=x[bad])
        return out


_PADDING = threading.local()  # .rows: padding rows of the model call in progress


def call_padding() -> int:
    """Rows of the model call in progress that are padding (its last rows, copies of the last
    row asked about; see :data:`CALL_ROW_MULTIPLE`), 0 outside a padded call: a wrapper that
    counts the rows it is asked about subtracts them."""
    return getattr(_PADDING, "rows", 0)


def _pads(rows: int, batch_size: int | None) -> bool:
    """Whether a call of ``rows`` rows is padded: not a multiple of :data:`CALL_ROW_MULTIPLE`,
    and the padded call within the user's ``batch_size``."""
    up = -(-rows // CALL_ROW_MULTIPLE) * CALL_ROW_MULTIPLE
    return up != rows and (batch_size is None or up <= batch_size)


def _padded(part: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    """``part`` with its last row repeated up to a multiple of :data:`CALL_ROW_MULTIPLE`
    rows (see there; unchanged when :func:`_pads` says no)."""
    n = part.shape[0]
    if n == 0 or not _pads(n, batch_size):
        return part
    up = -(-n // CALL_ROW_MULTIPLE) * CALL_ROW_MULTIPLE
    last = part.ndim == 4 and not part.is_contiguous() and \
        part.is_contiguous(memory_format=torch.channels_last)
    padded = torch.empty((up, *part.shape[1:]), dtype=part.dtype, device=part.device,
                         memory_format=torch.channels_last if last else torch.contiguous_format)
    padded[:n] = part  # the layout of the rows asked about is kept (channels-last images)
    padded[n:] = part[-1:]
    return padded


def rowwise_matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``A @ B`` whose row ``i`` is the same bits whatever the other rows of ``A`` and the
    number of threads, for a summary's per-explicand products (an explicand's values are then
    the same in any block, Ray task or machine of one kind). BLAS routes a product by its
    shape, layout and threads, so: ``A``'s rows are padded with zeros to a whole multiple of
    :data:`CALL_ROW_MULTIPLE` (its layout kept), ``B``'s columns to at least that many (a
    matrix-vector product rounds by the number of rows), and on a CPU the inner dimension is
    added in chunks of :data:`INNER_CHUNK` terms, in order."""
    (n, k), cols = A.shape, B.shape[1]
    up = -(-n // CALL_ROW_MULTIPLE) * CALL_ROW_MULTIPLE
    if up != n:
        column_major = A.T.is_contiguous() and not A.is_contiguous()
        padded = A.new_zeros((k, up)).T if column_major else A.new_zeros((up, k))
        padded[:n] = A
        A = padded
    if cols < CALL_ROW_MULTIPLE:
        wide = B.new_zeros((k, CALL_ROW_MULTIPLE))
        wide[:, :cols] = B
        B = wide
    chunk = INNER_CHUNK if A.device.type == "cpu" else max(k, 1)  # (GPU kernels: not bitwise)
    out = A[:, :chunk] @ B[:chunk]
    for k0 in range(chunk, k, chunk):
        out += A[:, k0:k0 + chunk] @ B[k0:k0 + chunk]
    return out[:n, :cols]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch, with its BLAS and LAPACK, on one thread inside: for the small dense linear
    algebra of the summaries (factorisations, inverses), whose multithreaded kernels split
    sums between threads, so that results are the same bits on machines of any number of
    cores (a Ray worker holds one)."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sigmoid(t: torch.Tensor) -> torch.Tensor:
    """``torch.sigmoid(t)`` with each element the same bits in a tensor of any size and with
    any number of threads. ``torch.sigmoid`` computes the tail of a tensor, and of each
    thread's share, on a scalar path that rounds differently from its vectorised body, so a
    row's probabilities would depend on the rows beside it; here every element goes through
    the vectorised body: the tensor is padded to a multiple of 64 elements and mapped in
    pieces of :data:`SIGMOID_PIECE`. On a GPU, or with autograd recording (masks optimised
    through the model), it is ``torch.sigmoid`` itself."""
    if t.device.type != "cpu" or (t.requires_grad and torch.is_grad_enabled()):
        return torch.sigmoid(t)
    n = t.numel()
    if n % 64 == 0 and t.is_contiguous():
        src, out = t.view(-1), torch.empty(n, dtype=t.dtype, device=t.device)
    else:
        src = out = t.new_zeros(-(-n // 64) * 64)
        out[:n] = t.reshape(-1)
    for a in range(0, len(out), SIGMOID_PIECE):
        torch.sigmoid(src[a:a + SIGMOID_PIECE], out=out[a:a + SIGMOID_PIECE])
    return out[:n].view(t.shape)


def rowwise_product(y: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """``einsum("np...,pd->nd...", y, M)`` computed for each explicand (and output) alone
    (:func:`rowwise_matmul`): a summary's per-explicand sums over coalitions, the same bits
    for an explicand in a block of any size (BLAS picks its kernels by the number of rows)."""
    n, p, tail = y.shape[0], y.shape[1], y.shape[2:]
    flat = y.movedim(1, -1).reshape(-1, p)  # (n * k, p)
    out = rowwise_matmul(flat, M.to(flat.dtype))  # (n * k, d)
    return out.reshape(n, *tail, M.shape[1]).movedim(-1, 1)


def _where(chunk) -> str:
    return "chunk -1 (the full-input call)" if chunk == -1 else f"chunk {chunk}"


def _fmt_idx(idx: np.ndarray | None) -> str:
    if idx is None:
        return "?"
    idx = np.unique(np.asarray(idx))
    text = ", ".join(map(str, idx[:10]))
    return f"[{text}{', ...' if len(idx) > 10 else ''}]"


def _unwrap(out: Any) -> Any:
    """The output array of a model that returns a container: ``logits`` of a mapping or of a
    HuggingFace-style ``ModelOutput``, else the first array of a mapping, tuple or list."""
    if isinstance(out, torch.Tensor | np.ndarray):
        return out
    if isinstance(out, Mapping):
        if "logits" in out:
            return out["logits"]
        first = next((v for v in out.values() if isinstance(v, torch.Tensor | np.ndarray)),
                     None)
        return out if first is None else first
    logits = getattr(out, "logits", None)
    if logits is not None:
        return logits
    if isinstance(out, tuple | list) and len(out) and isinstance(out[0], torch.Tensor):
        return out[0]
    return out


def writable(array: np.ndarray) -> np.ndarray:
    """``array``, copied only when it is read-only: torch cannot share a read-only buffer (it
    warns, and a tensor over it would be writable)."""
    return array if array.flags.writeable else array.copy()


def _as_2d(out: Any, rows: int, chunk, explicands, inputs) -> torch.Tensor:
    """A model's output as ``(rows, k)`` on the CPU: float64, or as it is when it is already a
    2-D floating CPU tensor (the caller converts while it stores it)."""
    if (type(out) is torch.Tensor and out.ndim == 2 and out.shape[0] == rows
            and out.device.type == "cpu" and out.is_floating_point()):
        # the common case, without the general path's conversions
        return out.detach() if out.requires_grad else out
    original = type(out).__name__ + (f" of dtype {out.dtype}" if hasattr(out, "dtype") else "")
    try:
        out = _unwrap(out)
        out = torch.as_tensor(writable(np.asarray(out)) if not isinstance(out, torch.Tensor)
                              else out)
        if out.dtype == torch.bool:
            out = out.to(torch.float64)
        if out.is_complex():
            raise TypeError(f"complex dtype {out.dtype}")
        out = out.detach().to(device="cpu", dtype=torch.float64)
    except Exception as exc:
        raise ModelError(
            f"the model returned a {original} that cannot be read as numbers ({type(exc).__name__}"
            f": {exc}) in {_where(chunk)} (explicands {_fmt_idx(explicands)}); it must return a "
            "numeric array or tensor (rows,) or (rows, k), a tuple whose first element is one, "
            "or a mapping / ModelOutput with 'logits'. The inputs of this chunk are in "
            "err.inputs.", inputs=inputs) from exc
    if out.ndim == 0 or out.shape[0] != rows:
        raise ModelError(
            f"the model returned {tuple(out.shape)} for {rows} input rows in {_where(chunk)} "
            f"(explicands {_fmt_idx(explicands)}); it must return one output row per input row. "
            "The inputs of this chunk are in err.inputs.", inputs=inputs)
    if out.ndim == 1:
        out = out[:, None]
    elif out.ndim > 2:
        out = out.reshape(rows, -1)
    return out


class TorchModel(Model):
    """Adapter for a ``torch.nn.Module``: eval mode and no grad while evaluating (restored on
    exit, also after an error), the module's own dtype, and its own device unless ``device``
    is given (:mod:`xai.devices`: the module is moved there for the length of a call and put
    back afterwards). ``output_kind`` defaults to ``"logits"``; declare ``"probability"`` for a
    model ending in a softmax, ``"raw"`` for a regressor."""

    pads_calls = True
    splits_padding = True

    def __init__(self, module: torch.nn.Module, *, batch_size: int | None = None,
                 output_kind: str | None = None,
                 device: torch.device | str | None = None) -> None:
        param = next(iter(module.parameters()), None)
        if param is None:
            param = next(iter(module.buffers()), None)
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        chosen = check_device("device", device)
        self.moves = chosen is not None  # device= given: placed there for each call
        device = chosen or (param.device if param is not None else torch.device("cpu"))
        super().__init__(batch_size=batch_size, dtype=dtype, device=device)
        self.module = module
        self.output_kind = _check_kind(output_kind or "logits")
        self.is_classifier = self.output_kind in ("logits", "probability")

    def placement(self) -> contextlib.AbstractContextManager[None]:
        if not self.moves:
            return contextlib.nullcontext()
        return placed(self.module, self.device)

    @contextlib.contextmanager
    def _placed_session(self) -> Iterator[None]:
        with self.placement(), eval_mode(self.module):
            yield

    def session(self) -> contextlib.AbstractContextManager[None]:
        return self._placed_session() if self.moves else eval_mode(self.module)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            return self.module(x.to(device=self.device, dtype=self.dtype))
        return self.module(x.to(device=self.device))


class SklearnModel(Model):
    """Adapter for a scikit-learn estimator: ``predict_proba``, else ``decision_function``,
    else ``predict`` (or the method named by ``method``).

    With a ``table`` (a :class:`~xai.tabular.TableEncoding`, set when a DataFrame is
    explained) the estimator receives DataFrames of the original columns, dtypes and
    categories; otherwise a numpy array, labelled with ``feature_names_in_`` when it has them.
    """

    pads_calls = True

    table = None

    def __init__(self, estimator: Any, *, batch_size: int | None = None,
                 method: str | None = None) -> None:
        super().__init__(batch_size=batch_size, dtype=torch.float64)
        if method is None:
            method = next(m for m in ("predict_proba", "decision_function", "predict")
                          if hasattr(estimator, m))
        if not hasattr(estimator, method):
            raise InputError(f"the estimator {type(estimator).__name__} has no method {method!r}")
        self.estimator = estimator
        self.method = method
        self._fn = getattr(estimator, method)
        self.output_kind = {"predict_proba": "probability", "decision_function": "logits"}.get(
            method, "raw")
        self.is_classifier = method != "predict" or hasattr(estimator, "classes_")
        self.feature_names = getattr(estimator, "feature_names_in_", None)

    def _forward(self, x: torch.Tensor) -> Any:
        arr = x.detach().cpu().numpy()
        if self.table is not None:
            return self._fn(self.table.decode(arr))
        if self.feature_names is not None:
            import pandas as pd

            arr = pd.DataFrame(arr, columns=self.feature_names)
        return self._fn(arr)


class CallableModel(Model):
    """Adapter for any function from a numpy array ``(rows, *shape)`` to ``(rows,)`` or
    ``(rows, k)``. ``output_kind`` says whether its outputs are probabilities or logits.

    With a ``table`` (a :class:`~xai.tabular.TableEncoding`, set when a DataFrame is
    explained) the function receives DataFrames of the original columns, dtypes and
    categories instead.
    """

    table = None

    def __init__(self, fn: Callable[[np.ndarray], Any], *, batch_size: int | None = None,
                 output_kind: str | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__(batch_size=batch_size, dtype=dtype)
        self.fn = fn
        self.output_kind = _check_kind(output_kind or "raw")
        self.is_classifier = self.output_kind != "raw"

    def _forward(self, x: torch.Tensor) -> Any:
        arr = x.detach().cpu().numpy()
        return self.fn(arr if self.table is None else self.table.decode(arr))


MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


def channels_last_layout(option: str, module: torch.nn.Module | None, forward: Callable,
                         x: torch.Tensor, probe: torch.Tensor) -> bool:
    """Whether to feed images ``x`` ``(n, C, H, W)`` to a model in the channels-last memory
    layout (``option``: one of :data:`MEMORY_FORMATS`). Same values, other strides: a
    convolution on a CPU runs in oneDNN's native layout without reordering its input (10-30%
    less time per pass for a small CNN).

    ``"auto"``: 4-D inputs on a CPU whose channel axis (1) feeds an ``nn.Conv2d`` of
    ``module``, and a channels-last copy of the first row gives ``probe`` (``forward``'s output
    on the first row as given) up to float rounding; a model that cannot take it (``.view`` on a
    permuted tensor) or computes something else keeps the contiguous layout.
    ``"channels_last"`` needs 4-D inputs; ``"contiguous"``: as given."""
    if option == "contiguous":
        return False
    if option not in MEMORY_FORMATS:
        from .errors import unknown_name

        raise unknown_name("memory_format", option, list(MEMORY_FORMATS))
    if x.ndim != 4:
        if option == "channels_last":
            raise InputError(f"memory_format='channels_last' needs 4-D inputs (n, C, H, W); got "
                             f"shape {tuple(x.shape)}")
        return False
    if option == "channels_last":
        return True
    if x.device.type != "cpu" or module is None or not any(
            isinstance(m, torch.nn.Conv2d) and m.in_channels == x.shape[1]
            for m in module.modules()):
        return False
    try:
        with torch.no_grad():
            out = forward(x[:1].detach().contiguous(memory_format=torch.channels_last))
    except Exception:  # noqa: BLE001 - the model cannot take it: keep the contiguous layout
        return False
    if not isinstance(out, torch.Tensor) or out.shape != probe.shape:
        return False
    scale = float(probe.detach().abs().max()) if probe.numel() else 0.0
    return bool(torch.allclose(out, probe, rtol=1e-4, atol=1e-5 * (1.0 + scale)))


def _check_kind(kind: str) -> str:
    if kind not in OUTPUT_KINDS:
        from .errors import unknown_name

        raise unknown_name("output kind", kind, OUTPUT_KINDS)
    return kind


def as_model(model: Any, *, batch_size: int | None = None,
             output_kind: str | None = None, device: torch.device | str | None = None) -> Model:
    """Wrap a torch module, a scikit-learn estimator or a callable as a :class:`Model`.

    ``device``: where a torch module runs (:class:`TorchModel`); other models run on the CPU,
    so only ``"cpu"`` is accepted for them."""
    if isinstance(model, Model):
        _check_adapter_device(model, device)
        if batch_size is not None:
            model.batch_size = batch_size
        return model
    if isinstance(model, torch.nn.Module):
        return TorchModel(model, batch_size=batch_size, output_kind=output_kind, device=device)
    refuse_device(device, type(model).__name__)
    if any(hasattr(model, m) for m in ("predict_proba", "decision_function", "predict")) and \
            hasattr(model, "fit"):
        sk = SklearnModel(model, batch_size=batch_size)
        if output_kind is not None:
            sk.output_kind = _check_kind(output_kind)
        return sk
    if callable(model):
        return CallableModel(model, batch_size=batch_size, output_kind=output_kind)
    raise InputError(
        f"cannot explain a {type(model).__name__}: pass a torch.nn.Module, a fitted scikit-learn "
        "estimator, or a function from a numpy array (rows, ...) to outputs (rows,) or (rows, k)."
    )


def _check_adapter_device(adapter: Model, device: Any) -> None:
    """``device=`` with an adapter built by the caller: it must be the adapter's own."""
    chosen = check_device("device", device)
    if chosen is not None and torch.device(chosen) != adapter.device:
        raise OptionError(f"device={device!r} but the model adapter runs on {adapter.device}: "
                          "drop device=, or build the adapter with it (xai.models.as_model("
                          "module, device=...))")
