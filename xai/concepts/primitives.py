"""``concept-primitives`` — a synthetic concept benchmark whose concepts and their effect on
the model are known.

**Generator.** 48×48 RGB images in ``[0, 1]``: a uniform dark background colour per image
(each channel ``U[0, 0.25]``) plus Gaussian pixel noise (SD ``noise``, 0.03), clipped to
``[0, 1]``; a 3×3 grid of 16 px cells. Six primitives (:data:`PRIMITIVES`), each a 14×14
pattern drawn in a random free cell with 0–2 px jitter, in a random bright colour (each
channel ``U[0.6, 1]``, so clearly above any background) and with a random texture phase:

====== =========================================================================
index  primitive
====== =========================================================================
0      ``stripes`` — horizontal stripes, period 4 (2 px on, 2 px off)
1      ``checker`` — checkerboard of 2 px squares
2      ``dots``    — small pluses (5 px) on a period-5 lattice
3      ``diag``    — diagonal stripes, period 4
4      ``blob``    — filled disc (radius 6)
5      ``ring``    — annulus (radii 3.5–6.5)
====== =========================================================================

Each primitive is present independently with probability ``p_present`` (½). Multi-label
targets: ``y[:, j] = 1`` iff causal primitive ``j`` (:data:`CAUSAL` = stripes, checker, dots)
is present, so every other primitive (including the other causal ones) is a distractor for
output ``j``.

**Returned** :class:`~xai.datasets.GroundTruthData`: ``X`` float32 ``(N, 3, 48, 48)``; ``y``
int64 ``(N, 3)``; random 70/15/15 ``train``/``val``/``test`` rows; ``ground_truth`` =
per-sample bool ``(N, 48, 48)`` footprint of the causal primitives (``kind="per_sample"``);
``extras``: ``label_map`` int8 ``(N, 48, 48)`` (primitive index 0–5 on its 14×14 footprint,
:data:`BACKGROUND` = 6 elsewhere), ``scenes`` (one JSON-able dict per image),
``label_names`` (the six primitives then ``"background"``), ``causal`` / ``distractors``
(names), ``render`` (:func:`render`), ``generator_version``.

``render(scene, drop=name)`` re-draws an image from its scene without the named primitive(s):
same background colour, same noise (the noise is stored as a seed), so the result equals the
original everywhere except on the dropped primitive's footprint — exact counterfactuals.
``render(scene)`` reproduces ``X[i]`` bit for bit.

**Model** (:func:`build_primitives_model`, :func:`train_primitives_model`): one
``nn.Sequential`` with two named children, ``g`` (three 3×3 conv blocks with 16, 32, 32
channels, ReLU modules, max-pools after the first two → ``32×12×12``, non-negative) and ``h``
(conv 32→32, ReLU, global average pool, flatten, linear → 3 logits). Pass
``layer="g"`` to CRAFT / ACE (:data:`SPLIT_LAYER`): the output of ``g``, spatial and after a
ReLU module.

**Model truth** (:func:`intervention_truth`, :func:`model_valid`): per output, the mean logit
drop when each primitive is removed by re-rendering.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..datasets.base import Dataset, GroundTruthData
from ..registry import register

GENERATOR_VERSION = 1
MODEL_VERSION = 1
NAME = "concept-primitives"
SIZE = 48
CELL = 16
PATCH = 14
PRIMITIVES = ("stripes", "checker", "dots", "diag", "blob", "ring")
CAUSAL = ("stripes", "checker", "dots")
DISTRACTORS = ("diag", "blob", "ring")
BACKGROUND = len(PRIMITIVES)  # label of background pixels in the label map
LABEL_NAMES = (*PRIMITIVES, "background")
SPLIT_LAYER = "g"
"""Layer name to pass to CRAFT / ACE: the output of ``g`` (32×12×12, after a ReLU)."""

# texture phases: number of distinct phases per axis of each primitive
_PHASES = {"stripes": (4, 1), "checker": (4, 4), "dots": (5, 5), "diag": (4, 1),
           "blob": (1, 1), "ring": (1, 1)}


def pattern(name: str, phase: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The 14×14 bool pattern of primitive ``name`` at texture ``phase`` (True = ink)."""
    r, c = np.mgrid[0:PATCH, 0:PATCH]
    a, b = int(phase[0]), int(phase[1])
    if name == "stripes":
        return (r + a) % 4 < 2
    if name == "checker":
        return ((r + a) // 2 + (c + b) // 2) % 2 == 0
    if name == "dots":
        rr, cc = (r + a) % 5, (c + b) % 5
        return ((rr == 2) & (np.abs(cc - 2) <= 1)) | ((cc == 2) & (np.abs(rr - 2) <= 1))
    if name == "diag":
        return (r + c + a) % 4 < 2
    d2 = (r - (PATCH - 1) / 2) ** 2 + (c - (PATCH - 1) / 2) ** 2
    if name == "blob":
        return d2 <= 6.0 ** 2 + 0.5
    if name == "ring":
        return (d2 <= 6.5 ** 2) & (d2 >= 3.5 ** 2)
    raise ValueError(f"unknown primitive {name!r}; expected one of {PRIMITIVES}")


def _names(drop) -> set[str]:
    if drop is None:
        return set()
    names = {drop} if isinstance(drop, str) else set(drop)
    bad = names - set(PRIMITIVES)
    if bad:
        raise ValueError(f"unknown primitive(s) {sorted(bad)}; expected names from "
                         f"{PRIMITIVES}")
    return names


def _origin(prim: dict) -> tuple[int, int]:
    i, j = prim["cell"]
    dy, dx = prim["offset"]
    return i * CELL + dy, j * CELL + dx


def render(scene: dict, drop: str | list[str] | tuple[str, ...] | None = None) -> np.ndarray:
    """The image ``(3, 48, 48)`` float32 of ``scene``, without the primitive(s) ``drop``.

    Same background colour and the same noise (re-drawn from ``scene["noise_seed"]``), so
    ``render(scene)`` equals the data set's image and ``render(scene, drop=p)`` differs from
    it only on ``p``'s footprint."""
    dropped = _names(drop)
    size, sigma = int(scene.get("size", SIZE)), float(scene["noise"])
    img = np.empty((3, size, size), np.float64)
    img[:] = np.asarray(scene["background"], np.float64)[:, None, None]
    for prim in scene["primitives"]:
        if prim["name"] in dropped:
            continue
        y0, x0 = _origin(prim)
        ink = pattern(prim["name"], prim["phase"])
        region = img[:, y0:y0 + PATCH, x0:x0 + PATCH]
        colour = np.asarray(prim["colour"], np.float64)[:, None, None]
        region[:] = np.where(ink[None], colour, region)
    noise = np.random.default_rng(int(scene["noise_seed"])).normal(0.0, sigma, img.shape)
    return np.clip(img + noise, 0.0, 1.0).astype(np.float32)


def label_map(scene: dict) -> np.ndarray:
    """Per-pixel labels ``(48, 48)`` int8: primitive index on its 14×14 footprint,
    :data:`BACKGROUND` elsewhere."""
    size = int(scene.get("size", SIZE))
    out = np.full((size, size), BACKGROUND, np.int8)
    for prim in scene["primitives"]:
        y0, x0 = _origin(prim)
        out[y0:y0 + PATCH, x0:x0 + PATCH] = PRIMITIVES.index(prim["name"])
    return out


def ink_mask(scene: dict, name: str) -> np.ndarray:
    """Bool ``(48, 48)``: pixels where primitive ``name`` draws ink (empty if absent)."""
    size = int(scene.get("size", SIZE))
    out = np.zeros((size, size), bool)
    for prim in scene["primitives"]:
        if prim["name"] == name:
            y0, x0 = _origin(prim)
            out[y0:y0 + PATCH, x0:x0 + PATCH] = pattern(name, prim["phase"])
    return out


def random_scene(rng: np.random.Generator, p_present: float = 0.5, noise: float = 0.03
                 ) -> dict:
    """One scene: background, noise seed and the present primitives (cells, jitter, colour,
    phase), all drawn from ``rng``."""
    present = rng.random(len(PRIMITIVES)) < p_present
    cells = rng.permutation(9)
    background = rng.uniform(0.0, 0.25, 3)
    prims = []
    for k, name in enumerate(PRIMITIVES):
        offset = rng.integers(0, CELL - PATCH + 1, 2)
        colour = rng.uniform(0.6, 1.0, 3)
        na, nb = _PHASES[name]
        phase = (int(rng.integers(na)), int(rng.integers(nb)))
        if present[k]:  # draws above are made for every primitive: scenes stay aligned
            cell = int(cells[k])
            prims.append({"name": name, "cell": [cell // 3, cell % 3],
                          "offset": [int(offset[0]), int(offset[1])],
                          "colour": [float(v) for v in colour], "phase": list(phase)})
    return {"size": SIZE, "background": [float(v) for v in background], "noise": float(noise),
            "noise_seed": int(rng.integers(2 ** 63 - 1)), "primitives": prims}


def targets(scene: dict) -> np.ndarray:
    """``(3,)`` int64: 1 where causal primitive j is in the scene."""
    names = {p["name"] for p in scene["primitives"]}
    return np.array([int(c in names) for c in CAUSAL], np.int64)


@register("dataset", NAME)
class ConceptPrimitives(Dataset):
    """Synthetic concept benchmark (see the module docstring).

    Parameters: ``n`` (3000 images), ``p_present`` (½), ``noise`` (pixel noise SD, 0.03).
    """

    name: ClassVar[str] = NAME
    defaults: ClassVar[dict] = {"n": 3000, "p_present": 0.5, "noise": 0.03}

    def generate(self, ss: np.random.SeedSequence, seed: int, params: dict) -> GroundTruthData:
        n, p, noise = int(params["n"]), float(params["p_present"]), float(params["noise"])
        if n < 10:
            raise ValueError(f"n must be >= 10; got {n}")
        if not 0 < p < 1:
            raise ValueError(f"p_present must lie in (0, 1); got {p}")
        if not 0 <= noise <= 0.2:
            raise ValueError(f"noise must lie in [0, 0.2]; got {noise}")
        scene_ss, split_ss = ss.spawn(2)
        rng = np.random.default_rng(scene_ss)
        scenes = [random_scene(rng, p, noise) for _ in range(n)]
        X = np.stack([render(s) for s in scenes])
        labels = np.stack([label_map(s) for s in scenes])
        y = np.stack([targets(s) for s in scenes])
        perm = np.random.default_rng(split_ss).permutation(n)
        a, b = round(0.7 * n), round(0.85 * n)
        train, val, test = (np.sort(perm[:a]), np.sort(perm[a:b]), np.sort(perm[b:]))
        return GroundTruthData(
            name=NAME, X=X, y=y, train=train, val=val, test=test,
            ground_truth=labels < len(CAUSAL), kind="per_sample", params=dict(params),
            seed=seed,
            extras={"label_map": labels, "scenes": scenes, "label_names": list(LABEL_NAMES),
                    "primitives": list(PRIMITIVES), "causal": list(CAUSAL),
                    "distractors": list(DISTRACTORS), "background_label": BACKGROUND,
                    "render": render, "generator_version": GENERATOR_VERSION,
                    "split_layer": SPLIT_LAYER})

    @staticmethod
    def render(scene: dict, drop=None) -> np.ndarray:
        """:func:`render` (also ``data.extras["render"]``)."""
        return render(scene, drop)


def make(seed: int = 0, **params: Any) -> GroundTruthData:
    """``ConceptPrimitives().make(seed, **params)``."""
    return ConceptPrimitives().make(seed, **params)


# ---------------------------------------------------------------- model

ARCH = {"g": "conv3-16,relu,maxpool2,conv3-32,relu,maxpool2,conv3-32,relu",
        "h": "conv3-32,relu,gap,linear-3", "version": MODEL_VERSION}


def build_primitives_model():
    """``nn.Sequential(g=..., h=...)``; ``model.g`` maps ``(n, 3, 48, 48)`` to non-negative
    ``(n, 32, 12, 12)``; ``model.h`` maps that to 3 logits. Layer names: ``"g"`` (split point
    for CRAFT / ACE), ``"g.0"`` … ``"g.7"``, ``"h.0"`` … ``"h.4"``."""
    from torch import nn

    g = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
    h = nn.Sequential(
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, len(CAUSAL)))
    return nn.Sequential(OrderedDict(g=g, h=h))


def default_cache_dir() -> Path:
    """``$XAI_CACHE_DIR`` or ``~/.cache/xai``."""
    env = os.environ.get("XAI_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "xai"


def model_cache_key(data: GroundTruthData, seed: int, settings: dict) -> tuple[str, dict]:
    """SHA-256 (32 hex) of the generator version, data parameters and seed, the number of
    rows, the training seed, the architecture, the training settings and torch
    major.minor; and the hashed contents."""
    import torch

    content = {"dataset": data.name,
               "generator_version": int(data.extras.get("generator_version", -1)),
               "params": {k: data.params[k] for k in sorted(data.params)},
               "data_seed": int(data.seed), "n": len(data.X), "n_train": len(data.train),
               "seed": int(seed), "arch": ARCH, "settings": settings,
               "torch": ".".join(torch.__version__.split("+")[0].split(".")[:2])}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=float)
    return hashlib.sha256(text.encode()).hexdigest()[:32], content


def train_primitives_model(data: GroundTruthData, seed: int = 0,
                           cache_dir: str | Path | None = None, epochs: int = 16,
                           lr: float = 3e-3, batch_size: int = 64, flips: bool = True,
                           num_threads: int | None = None, use_cache: bool = True):
    """Train (or load) the benchmark's CNN (see the module docstring) on ``data``; returns
    ``(model, info)``.

    BCE with logits on the three outputs, Adam (``lr``), mini-batches of ``batch_size`` from
    ``data.train``, random horizontal and vertical flips (each image, each axis, p = ½) when
    ``flips``; the weights of the epoch with the lowest validation loss are kept. ``info``:
    per-output and mean accuracies on train/val/test (``acc_<part>`` lists,
    ``<part>_accuracy`` means), ``val_loss``, ``best_epoch``, ``seconds``, ``key``,
    ``cached`` (True when loaded). Cache: ``cache_dir`` (default :func:`default_cache_dir`)
    ``/concept-primitives-<key>.pt`` + ``.json``, reused only on an exact key match
    (:func:`model_cache_key`). Deterministic for a seed (torch generators seeded inside a
    forked RNG state). The model is returned in eval mode on the CPU."""
    import torch

    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs and batch_size must be >= 1 and lr > 0; got epochs={epochs}, "
                         f"batch_size={batch_size}, lr={lr}")
    settings = {"epochs": int(epochs), "lr": float(lr), "batch_size": int(batch_size),
                "flips": bool(flips), "loss": "bce-with-logits", "optimizer": "adam",
                "selection": "best validation loss"}
    key, content = model_cache_key(data, seed, settings)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    weights, meta = folder / f"{NAME}-{key}.pt", folder / f"{NAME}-{key}.json"
    if use_cache and weights.exists() and meta.exists():
        info = json.loads(meta.read_text())
        if info.get("key_content") == json.loads(json.dumps(content, default=float)):
            model = build_primitives_model()
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            return model.eval(), {**info, "cached": True}
    start = time.perf_counter()
    threads = torch.get_num_threads()
    try:
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model, info = _fit(data, int(seed), settings)
    finally:
        torch.set_num_threads(threads)
    info.update({"key": key, "key_content": content, "seconds": time.perf_counter() - start,
                 "split_layer": SPLIT_LAYER})
    if use_cache:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = weights.with_suffix(".pt.tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, weights)
        meta.write_text(json.dumps(info, indent=1, sort_keys=True, default=float))
    return model, {**info, "cached": False}


def _fit(data: GroundTruthData, seed: int, settings: dict):
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    model = build_primitives_model()
    for m in model.modules():  # initialise from the seeded generator
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
            bound = 1 / math.sqrt(m.weight[0].numel())
            nn.init.uniform_(m.bias, -bound, bound, generator=gen)
    X = torch.as_tensor(np.asarray(data.X, np.float32))
    Y = torch.as_tensor(np.asarray(data.y, np.float32))
    train, val = torch.as_tensor(data.train), torch.as_tensor(data.val)
    if len(val) == 0:
        raise ValueError("the data set has no validation rows")
    opt = torch.optim.Adam(model.parameters(), lr=settings["lr"])
    loss_fn = nn.BCEWithLogitsLoss()
    bs = settings["batch_size"]
    best, best_epoch, best_state = math.inf, -1, None
    for epoch in range(settings["epochs"]):
        model.train()
        perm = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(perm), bs):
            idx = perm[i:i + bs]
            xb = X[idx]
            if settings["flips"]:
                fh = torch.rand(len(idx), generator=gen) < 0.5
                fv = torch.rand(len(idx), generator=gen) < 0.5
                xb = torch.where(fh[:, None, None, None], xb.flip(3), xb)
                xb = torch.where(fv[:, None, None, None], xb.flip(2), xb)
            opt.zero_grad()
            loss_fn(model(xb), Y[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            vloss = float(loss_fn(model(X[val]), Y[val]))
        if vloss < best - 1e-7:
            best, best_epoch = vloss, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    info: dict = {"best_epoch": best_epoch, "val_loss": best, "epochs_run": settings["epochs"]}
    with torch.no_grad():
        for part in ("train", "val", "test"):
            rows = torch.as_tensor(getattr(data, part))
            if len(rows):
                pred = _logits(model, X[rows]) > 0
                acc = (pred == (Y[rows] > 0.5)).float().mean(0)
                info[f"acc_{part}"] = [float(a) for a in acc]
                info[f"{part}_accuracy"] = float(acc.mean())
    return model, info


def _logits(model, X, batch: int = 512):
    import torch

    with torch.no_grad():
        X = torch.as_tensor(np.asarray(X, np.float32))
        return torch.cat([model(X[i:i + batch]) for i in range(0, len(X), batch)])


def primitives_model(data: GroundTruthData, seed: int, cache_dir):
    """Suite model builder ``(data, seed, cache_dir) -> (model, info)``."""
    return train_primitives_model(data, seed, cache_dir)


# ---------------------------------------------------------------- model truth

def intervention_truth(model, data: GroundTruthData, rows=None) -> np.ndarray:
    """Mean logit drop ``(3 outputs, 6 primitives)``: for primitive ``p`` and output ``j``,
    the mean over ``rows`` (default ``data.test``) whose scene contains ``p`` of
    ``logit_j(x) − logit_j(render(scene, drop=p))``. NaN where no row contains ``p``."""
    rows = np.asarray(data.test if rows is None else rows)
    scenes = data.extras["scenes"]
    originals, dropped, owner = [], [], []
    for r in rows:
        scene = scenes[int(r)]
        for prim in scene["primitives"]:
            originals.append(int(r))
            dropped.append(render(scene, drop=prim["name"]))
            owner.append(PRIMITIVES.index(prim["name"]))
    truth = np.full((len(CAUSAL), len(PRIMITIVES)), np.nan)
    if not owner:
        return truth
    base = _logits(model, np.asarray(data.X)[np.asarray(originals)]).double().numpy()
    cf = _logits(model, np.stack(dropped)).double().numpy()
    drop, owner = base - cf, np.asarray(owner)
    for p in range(len(PRIMITIVES)):
        sel = owner == p
        if sel.any():
            truth[:, p] = drop[sel].mean(0)
    return truth


def model_valid(truth: np.ndarray, min_ratio: float = 2.0) -> bool:
    """True iff every output ``j`` relies mainly on its causal primitive: its drop
    ``truth[j, j]`` is positive and at least ``min_ratio`` times every other primitive's
    drop (absolute value) for that output. Otherwise the benchmark run is *invalid* (the
    model, not the explainer, is to blame)."""
    truth = np.asarray(truth, float)
    for j in range(truth.shape[0]):
        own = truth[j, j]
        others = np.abs(np.delete(truth[j], j))
        others = others[np.isfinite(others)]
        if not np.isfinite(own) or own <= 0:
            return False
        if others.size and own < min_ratio * others.max():
            return False
    return True

