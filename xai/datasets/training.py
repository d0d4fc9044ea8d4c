"""Models trained by the benchmark harness, cached on disk.

``train_model(data, arch)`` trains LLR / MLP / CNN on a :class:`GroundTruthData` (logits,
cross-entropy on logits, Adam, early stopping on the validation loss; the weights of the best
validation epoch are kept) and returns ``(model, info)``; the model is in eval mode on the CPU.

``arch="logreg"`` (for ``linear8x8``: unpenalised logistic regression without intercept) fits
scikit-learn's ``LogisticRegression(C=inf, fit_intercept=False)`` (no penalty) on the training
rows (lbfgs, deterministic) and returns it as the LLR module with logits
``(-w^T x/2, w^T x/2)``; the gradient trainer is too slow on that data set's tiny input scale.

Architectures: LLR = linear D -> 2 without bias. MLP (ReLU, dropout 0.3, no bias): 8x8
``64-32-16-8-2``; larger images ``D-256-256-64-2``; tabular data ``d-32-16-8-2`` (the 8x8
widths). CNN: 8x8 four blocks [conv k=2 pad 1, 4 channels, ReLU, max-pool 2] -> linear -> 2;
larger images four blocks [conv k=4 pad 1, ReLU, max-pool 2] with 4/8/16/32 channels ->
linear -> 2.

Cache: ``cache_dir/<key>.pt`` (state dict) and ``<key>.json`` (the key's contents and the
accuracies), key = SHA-256 of the canonical JSON of the data set name, params, seed and size,
source versions (scikit-image for NATURAL backgrounds), architecture, training settings,
training seed and torch major.minor. A cached model is reused only on an exact key match.
The device is not part of the key.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .base import GroundTruthData

ARCHS = ("llr", "mlp", "cnn", "logreg")
CACHE_FORMAT = 1


def build_model(arch: str, input_shape: tuple[int, ...]) -> nn.Module:
    """The architecture ``arch`` for rows of ``input_shape`` (``(d,)`` or ``(1, H, W)``)."""
    arch = arch.lower()
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}; got {arch!r}")
    D = int(np.prod(input_shape))
    tabular = len(input_shape) == 1
    if arch in ("llr", "logreg"):
        return nn.Sequential(nn.Flatten(), nn.Linear(D, 2, bias=False))
    if arch == "mlp":
        widths = [32, 16, 8] if tabular or D <= 64 else [256, 256, 64]
        layers: list[nn.Module] = [nn.Flatten()]
        prev = D
        for w in widths:
            layers += [nn.Linear(prev, w, bias=False), nn.ReLU(), nn.Dropout(0.3)]
            prev = w
        layers.append(nn.Linear(prev, 2, bias=False))
        return nn.Sequential(*layers)
    if tabular:
        raise ValueError("arch 'cnn' needs images (N, C, H, W); use 'llr' or 'mlp' for "
                         "tabular data")
    C, H, W = input_shape
    small = max(H, W) <= 8
    kernel, channels = (2, [4, 4, 4, 4]) if small else (4, [4, 8, 16, 32])
    layers = []
    prev = C
    for ch in channels:
        layers += [nn.Conv2d(prev, ch, kernel, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        prev = ch
    body = nn.Sequential(*layers)
    with torch.no_grad():
        flat = int(np.prod(body(torch.zeros(1, C, H, W)).shape[1:]))
    return nn.Sequential(body, nn.Flatten(), nn.Linear(flat, 2))


def cache_key(data: GroundTruthData, arch: str, seed: int, settings: dict) -> tuple[str, dict]:
    """The hash of everything that determines a trained model, and its contents."""
    versions = {k: str(v) for k, v in data.extras.items() if k.endswith("_version")}
    content = {"format": CACHE_FORMAT, "dataset": data.name,
               "params": _canonical(data.params), "data_seed": int(data.seed),
               "n": len(data.X), "shape": list(data.X.shape[1:]), "versions": versions,
               "arch": arch, "seed": int(seed), "settings": _canonical(settings),
               "torch": ".".join(torch.__version__.split("+")[0].split(".")[:2])}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32], content


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def train_model(data: GroundTruthData, arch: str = "llr", seed: int = 0,
                cache_dir: str | Path | None = None, epochs: int = 500, patience: int = 20,
                lr: float = 5e-4, batch_size: int = 512, device: str = "cpu",
                num_threads: int | None = 1) -> tuple[nn.Module, dict]:
    """Train (or load from ``cache_dir``) model ``arch`` on ``data``; returns ``(model,
    info)`` with ``info`` = accuracies (train/val/test), epochs run, best epoch, validation
    loss, key, ``cached`` (True when loaded) and seconds. Deterministic for a given seed:
    all draws come from torch generators seeded in a forked RNG state. ``num_threads``: torch
    CPU threads while training (1 by default: these models are tiny, and more threads on a
    busy machine make every step far slower; None keeps torch's setting); restored after."""
    arch = arch.lower()
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}; got {arch!r}")
    if epochs < 1 or patience < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs, patience and batch_size must be >= 1 and lr > 0; got "
                         f"epochs={epochs}, patience={patience}, batch_size={batch_size}, lr={lr}")
    settings = {"epochs": int(epochs), "patience": int(patience), "lr": float(lr),
                "batch_size": int(batch_size), "optimizer": "adam",
                "loss": "cross-entropy on logits", "early_stopping": "validation loss"}
    key, content = cache_key(data, arch, seed, settings)
    shape = tuple(data.X.shape[1:])
    paths = None
    if cache_dir is not None:
        folder = Path(cache_dir)
        paths = folder / f"{key}.pt", folder / f"{key}.json"
        if paths[0].exists() and paths[1].exists():
            info = json.loads(paths[1].read_text())
            if info.get("key_content") == content:
                model = build_model(arch, shape)
                model.load_state_dict(torch.load(paths[0], map_location="cpu",
                                                 weights_only=True))
                model.eval()
                return model, {**info, "cached": True}
    start = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, info = _fit(data, arch, shape, seed, settings, device)
    finally:
        torch.set_num_threads(threads)
    info.update({"key": key, "key_content": content, "seconds": time.perf_counter() - start})
    if paths is not None:
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        tmp = paths[0].with_suffix(".pt.tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(paths[0])
        paths[1].write_text(json.dumps(info, indent=1, sort_keys=True))
    return model, {**info, "cached": False}


def _fit(data: GroundTruthData, arch: str, shape, seed: int, settings: dict, device: str):
    gen = torch.Generator().manual_seed(int(seed))
    model = build_model(arch, shape)
    if arch == "logreg":
        return _fit_logreg(data, model)
    for m in model.modules():  # re-initialise from the seeded generator
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
            if m.bias is not None:
                bound = 1 / math.sqrt(m.weight[0].numel())
                nn.init.uniform_(m.bias, -bound, bound, generator=gen)
    model = model.to(device)
    X = torch.as_tensor(np.asarray(data.X, np.float32))
    y = torch.as_tensor(np.asarray(data.y, np.int64))
    train, val = np.asarray(data.train), np.asarray(data.val)
    if len(val) == 0:
        raise ValueError(f"data set {data.name!r} has no validation rows; early stopping "
                         "needs them")
    Xtr, ytr = X[train].to(device), y[train].to(device)
    Xva, yva = X[val].to(device), y[val].to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    loss_fn = nn.CrossEntropyLoss()
    best, best_epoch, best_state, wait, epoch = math.inf, -1, None, 0, 0
    bs = settings["batch_size"]
    for epoch in range(settings["epochs"]):
        model.train()
        perm = torch.randperm(len(Xtr), generator=gen).to(device)
        for i in range(0, len(perm), bs):
            idx = perm[i:i + bs]
            opt.zero_grad()
            loss_fn(model(Xtr[idx]), ytr[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            vloss = float(loss_fn(model(Xva), yva))
        if vloss < best - 1e-7:
            best, best_epoch, wait = vloss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            wait += 1
            if wait >= settings["patience"]:
                break
    model.load_state_dict(best_state)
    model = model.cpu().eval()
    info = {"arch": arch, "epochs_run": epoch + 1, "best_epoch": best_epoch,
            "val_loss": best}
    return model, _accuracies(model, data, X, y, info)


def _fit_logreg(data: GroundTruthData, model: nn.Module):
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(data.X, np.float64).reshape(len(data.X), -1)
    y = np.asarray(data.y)
    clf = LogisticRegression(C=np.inf, fit_intercept=False, max_iter=10_000, tol=1e-8)
    clf.fit(X[data.train], y[data.train])
    w = torch.as_tensor(clf.coef_[0], dtype=torch.float32)
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([-w / 2, w / 2]))
    model.eval()
    Xt, yt = torch.as_tensor(np.asarray(data.X, np.float32)), torch.as_tensor(y)
    with torch.no_grad():
        vloss = float(nn.functional.cross_entropy(model(Xt[data.val]), yt[data.val])) \
            if len(data.val) else float("nan")
    info = {"arch": "logreg", "epochs_run": int(clf.n_iter_[0]), "best_epoch": -1,
            "val_loss": vloss}
    return model, _accuracies(model, data, Xt, yt, info)


def _accuracies(model: nn.Module, data: GroundTruthData, X: torch.Tensor, y: torch.Tensor,
                info: dict) -> dict:
    with torch.no_grad():
        for part in ("train", "val", "test"):
            rows = np.asarray(getattr(data, part))
            if len(rows):
                pred = model(X[rows]).argmax(1)
                info[f"{part}_accuracy"] = float((pred == y[rows]).float().mean())
            else:
                info[f"{part}_accuracy"] = float("nan")
    return info
