"""Problem 3: image explanations. LIME and KernelSHAP on ~50 SLIC superpixels of 64x64 images
of a small CNN, at 1000 samples per image: time against the floor and error against a
high-budget reference.

The problem (:func:`load_image_problem`, shared with problem 4): four bundled scikit-image
photographs (astronaut, chelsea, coffee, rocket), a float32 CNN trained in seconds to tell
which photograph a random crop comes from (cached under ``cache_dir``), the whole photographs
resized to 64x64 as explicands, one SLIC segmentation per image (:meth:`FeatureMap.superpixels`,
computed once and handed to every contender) and the predicted class as target. Every
contender explains P(target) (softmax), with removed superpixels filled with their mean colour
(lime's ``hide_color=None``; ``baseline="segment-mean"`` here), through one
:class:`~.common.CountingModule`.

- time: the median over seeds of the wall time to explain all images (one warm-up call
  first); floor: one bare forward pass (no grad) over as many images as the counter saw for
  that contender, the fastest of batch sizes :data:`FLOOR_BATCHES`, on the images as given
  (contiguous NCHW). As in problem 4, a contender may hand the CNN another memory layout:
  ours builds its synthetic images channels-last (``memory_format="auto"``; one probe row,
  counted), which costs a wider mask gather and saves the convolutions' reorders.
- error: mean over images and seeds of ``|phi - ref| / |ref|`` (L2 over superpixels). The
  reference of the Shapley contenders is exact-ish Shapley values (xai KernelSHAP at
  ``reference_budget``; it is exact when the budget covers all ``2^d`` coalitions); that of
  the LIME contenders is the LIME surrogate of lime's defaults (kernel ``exp(-D^2/(2 w^2))``,
  cosine distance in the binary space, ``w = 0.25``, ridge ``alpha = 1`` with intercept,
  Bernoulli(1/2) samples) at ``reference_budget`` samples. Contenders with another estimand
  (captum Lime's defaults) are scored against the LIME reference and marked.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .common import CountingModule, fastest_floor, measure_contenders, trained
from .report import _env_line, publish

CLASSES = ("astronaut", "chelsea", "coffee", "rocket")
FLOOR_BATCHES = (128, 256, 1024)  # the floor is the fastest of these batch sizes
OURS_BATCH = 128  # ours' tuned setting: CNN forwards on a CPU are fastest in mid-sized batches
TARGET_TIME = 1.2  # ours <= 1.2x the floor
LIME_WIDTH = 0.25  # lime's image kernel width (cosine distance in the binary space)
SMOOTHING = 0.3  # label smoothing of the CNN's training

SIZES = {
    "full": {"n_images": 4, "size": 64, "n_segments": 50, "samples": 1000, "seeds": 3,
             "reference_budget": 32768, "train_steps": 300},
    "quick": {"n_images": 2, "size": 64, "n_segments": 50, "samples": 1000, "seeds": 2,
              "reference_budget": 8192, "train_steps": 150},
    "tiny": {"n_images": 2, "size": 32, "n_segments": 10, "samples": 64, "seeds": 1,
             "reference_budget": 1024, "train_steps": 10},
}


# -- the problem ------------------------------------------------------------------------------
def cnn(k: int = len(CLASSES)) -> torch.nn.Module:
    """Three strided convolutions, global average pooling, a linear head (~3 M MACs at 64x64)."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, k))


def source_images(side: int) -> np.ndarray:
    """The photographs, centre-cropped square and resized to ``side``: ``(4, 3, side, side)``
    float32 in [0, 1]."""
    from skimage import data, transform
    from skimage.util import img_as_float

    out = []
    for name in CLASSES:
        img = img_as_float(getattr(data, name)())[..., :3]
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        img = transform.resize(img, (side, side), order=1, anti_aliasing=True)
        out.append(np.moveaxis(img, -1, 0))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def random_crops(sources: torch.Tensor, n: int, size: int, gen: torch.Generator,
                 min_scale: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random crops (scale, position, horizontal flip) of random sources, resampled to
    ``size`` pixels in one batched ``grid_sample``; returns (crops, labels)."""
    F = torch.nn.functional
    labels = torch.randint(len(sources), (n,), generator=gen)
    scale = min_scale + (1 - min_scale) * torch.rand(n, generator=gen)
    tx = (1 - scale) * (2 * torch.rand(n, generator=gen) - 1)
    ty = (1 - scale) * (2 * torch.rand(n, generator=gen) - 1)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = scale * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = scale, ty
    grid = F.affine_grid(theta, (n, 3, size, size), align_corners=False)
    return F.grid_sample(sources[labels], grid, align_corners=False), labels


@dataclass
class ImageProblem:
    module: torch.nn.Module  # bare float32 CNN (logits)
    counter: CountingModule
    images: np.ndarray  # explicands (n, 3, H, W) float32
    targets: np.ndarray  # predicted class per explicand
    fmap: object  # xai FeatureMap, one SLIC map per image
    segments: np.ndarray  # (n, H, W) superpixel labels 0..d_i-1
    fill: np.ndarray  # (n, 3, H, W) segment-mean images (removed superpixels)
    test_accuracy: float
    key: str  # identifies model + images + segmentation (reference cache)

    @property
    def d(self) -> list[int]:
        return [int(s.max()) + 1 for s in self.segments]

    def proba(self, x: torch.Tensor, i: int | None = None) -> torch.Tensor:
        """Softmax probabilities (m, k), or P(target of image i) (m,), through the counter."""
        with torch.no_grad():
            p = torch.softmax(self.counter(x.to(torch.float32)).double(), -1)
        return p if i is None else p[:, int(self.targets[i])]

    def masked(self, i: int, Z: np.ndarray) -> np.ndarray:
        """Images ``(m, 3, H, W)`` of image i with the superpixels where ``Z`` (m, d) is 0
        filled, vectorised."""
        keep = np.asarray(Z, bool)[:, self.segments[i]]  # (m, H, W)
        return np.where(keep[:, None], self.images[i][None], self.fill[i][None])


def train_cnn(size: int, steps: int, seed: int = 0, cache_dir: Path | None = None,
              batch: int = 64, log: Callable = print) -> tuple[torch.nn.Module, float]:
    """The CNN (trained with Adam on random crops, seeded, cached) and its held-out accuracy."""
    torch.manual_seed(seed)
    module = cnn()
    sources = torch.as_tensor(source_images(2 * size))

    def train():
        t = time.perf_counter()
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(module.parameters(), lr=3e-3)
        for _ in range(steps):
            x, y = random_crops(sources, batch, size, gen)
            opt.zero_grad()
            # label smoothing keeps the probabilities off 0 and 1, so that removing
            # superpixels moves them (a saturated softmax has no attributions to estimate)
            torch.nn.functional.cross_entropy(module(x), y, label_smoothing=SMOOTHING).backward()
            opt.step()
        log(f"[p3] trained the CNN ({steps} steps) in {time.perf_counter() - t:.1f}s")
    trained(module, f"crops-cnn|{CLASSES}|size={size}|steps={steps}|b={batch}|s={seed}|"
            f"ls={SMOOTHING}", cache_dir, train, prefix="cnn")
    x, y = random_crops(sources, 512, size, torch.Generator().manual_seed(seed + 1000))
    with torch.no_grad():
        acc = float((module(x).argmax(1) == y).float().mean())
    return module, acc


def load_image_problem(*, n_images: int = 4, size: int = 64, n_segments: int = 50,
                       train_steps: int = 300, seed: int = 0, cache_dir: Path | None = None,
                       log: Callable = print, **_) -> ImageProblem:
    """The CNN, the explicands (the photographs resized), their superpixels and targets."""
    from xai.features import FeatureMap

    module, acc = train_cnn(size, train_steps, seed, cache_dir, log=log)
    images = source_images(size)[:n_images]
    fmap = FeatureMap.superpixels(images, "slic", channel_axis=0, n_segments=n_segments)
    segments = fmap.index.copy()
    with torch.no_grad():
        targets = module(torch.as_tensor(images)).argmax(1).numpy()
    fill = np.empty_like(images)
    for i, seg in enumerate(segments):  # per superpixel, per channel mean (lime's hide_color)
        for j in range(int(seg.max()) + 1):
            fill[i][:, seg == j] = images[i][:, seg == j].mean(1, keepdims=True)
    state = b"".join(p.numpy().tobytes() for p in module.state_dict().values())
    key = hashlib.sha256(state + images.tobytes() + segments.tobytes()).hexdigest()[:12]
    return ImageProblem(module, CountingModule(module), images, targets, fmap, segments, fill,
                        acc, key)


# -- references -------------------------------------------------------------------------------
def _ours(problem: ImageProblem, summary: str, budget: int, seed: int, model=None,
          **options) -> list[np.ndarray]:
    """xai's explanation of every image: LIME is the ``lime`` preset; KernelSHAP the
    ``kernelshap`` summary with the same segment-mean baseline (``Explainer`` composes it)."""
    import xai

    model = problem.counter if model is None else model
    common = {"budget": int(budget), "seed": int(seed), "target": problem.targets,
              "output": "probability", "progress": False, **options}
    if summary == "lime":
        ex = xai.explain(model, problem.images, method="lime", features=problem.fmap, **common)
    else:
        ex = xai.Explainer("baseline", "prediction", summary, baseline="segment-mean",
                           method=summary, **common).explain(model, problem.images,
                                                             features=problem.fmap)
    return [np.asarray(ex.values[i, :d], float) for i, d in enumerate(problem.d)]


def references(problem: ImageProblem, budget: int, cache_dir: Path | None = None,
               seed: int = 12345) -> dict[str, list[np.ndarray]]:
    """Reference values per estimand (``"shapley"``, ``"lime"``): xai at ``budget`` samples per
    image on the bare module (not counted), cached under ``cache_dir``."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"p3_reference_{problem.key}_{budget}_{seed}.npz"
        if path.exists():
            z = np.load(path)
            return {e: [z[f"{e}_{i}"] for i in range(len(problem.d))]
                    for e in ("shapley", "lime")}
    out = {"shapley": _ours(problem, "kernelshap", budget, seed, model=problem.module),
           "lime": _ours(problem, "lime", budget, seed, model=problem.module)}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f"{e}_{i}": v for e, vals in out.items() for i, v in enumerate(vals)})
    return out


def exact_shapley_images(problem: ImageProblem, i: int) -> np.ndarray:
    """Brute-force Shapley values of image i's superpixel game (for tests; 2^d forwards)."""
    import itertools
    import math

    d = problem.d[i]
    Z = np.array(list(itertools.product([0, 1], repeat=d)), bool)
    with torch.no_grad():
        v = torch.softmax(problem.module(torch.as_tensor(problem.masked(i, Z))).double(), -1)[
            :, int(problem.targets[i])].double().numpy()
    val = {tuple(z): x for z, x in zip(Z.astype(int).tolist(), v)}
    phi = np.zeros(d)
    for z in Z:
        for j in np.flatnonzero(~z):
            k = int(z.sum())
            w = math.factorial(k) * math.factorial(d - k - 1) / math.factorial(d)
            with_j = z.copy()
            with_j[j] = True
            phi[j] += w * (val[tuple(with_j.astype(int))] - val[tuple(z.astype(int))])
    return phi


# -- contenders -------------------------------------------------------------------------------
@dataclass
class ImageContender:
    name: str
    library: str
    estimand: str  # "shapley", "lime" or "other" (scored against the lime reference)
    run: Callable  # (problem, samples, seed) -> list of (d_i,) arrays
    settings: str
    ours: bool = False


def _xai(summary, **options):
    def run(problem, samples, seed):
        return _ours(problem, summary, samples, seed, **options)
    return run


def _lime(batch_size):
    def run(problem, samples, seed):
        from lime.lime_image import LimeImageExplainer

        out = []
        for i in range(len(problem.images)):
            seg = problem.segments[i]
            img = np.moveaxis(problem.images[i], 0, -1).astype(np.float64)  # lime wants HWC

            def classifier_fn(imgs):
                x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(imgs, -1, 1),
                                                          dtype=np.float32))
                return problem.proba(x).numpy()
            ex = LimeImageExplainer(kernel_width=LIME_WIDTH, random_state=seed)
            with contextlib.redirect_stderr(io.StringIO()):  # lime's tqdm bar
                e = ex.explain_instance(img, classifier_fn, labels=(int(problem.targets[i]),),
                                        top_labels=None, hide_color=None,
                                        num_samples=int(samples), batch_size=batch_size,
                                        segmentation_fn=lambda _img, seg=seg: seg,
                                        random_seed=seed)
            vals = np.zeros(problem.d[i])
            for j, w in e.local_exp[int(problem.targets[i])]:
                vals[j] = w
            out.append(vals)
        return out
    return run


def _shap_kernel(l1_reg):
    def run(problem, samples, seed):
        import shap

        out = []
        for i, d in enumerate(problem.d):
            def f(Z, i=i):
                return problem.proba(torch.from_numpy(problem.masked(i, Z)), i).double().numpy()
            np.random.seed(seed)  # KernelExplainer draws from the global numpy RNG
            ex = shap.KernelExplainer(f, np.zeros((1, d)))
            kw = {} if l1_reg == "default" else {"l1_reg": l1_reg}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sv = ex.shap_values(np.ones((1, d)), nsamples=int(samples), silent=True, **kw)
            out.append(np.asarray(sv, float).reshape(d))
        return out
    return run


def _lime_similarity(original_inp, perturbed_inp, perturbed_interpretable_inp, **kwargs):
    """lime's kernel on the cosine distance of the binary vector to the all-kept vector."""
    z = perturbed_interpretable_inp.double()
    d = z.shape[-1]
    dist = 1 - torch.sqrt(z.sum() / d)
    return torch.exp(-dist ** 2 / (2 * LIME_WIDTH ** 2))


def _captum(kind: str, ppe: int | None = None, lime_kernel: bool = False):
    def run(problem, samples, seed):
        from captum.attr import KernelShap, Lime

        out = []
        for i, d in enumerate(problem.d):
            def fwd(x, i=i):
                return problem.proba(x, i)
            if kind == "lime" and lime_kernel:
                from captum._utils.models.linear_model import SkLearnRidge

                expl = Lime(fwd, interpretable_model=SkLearnRidge(alpha=1.0),
                            similarity_func=_lime_similarity)
            elif kind == "lime":
                expl = Lime(fwd)
            else:
                expl = KernelShap(fwd)
            x = torch.as_tensor(problem.images[i][None])
            mask = torch.as_tensor(problem.segments[i])[None, None].expand(1, 3, -1, -1)
            torch.manual_seed(seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                attr = expl.attribute(x, baselines=torch.as_tensor(problem.fill[i][None]),
                                      feature_mask=mask.contiguous(), n_samples=int(samples),
                                      perturbations_per_eval=int(ppe or samples),
                                      return_input_shape=False)
            out.append(attr.detach().double().numpy().reshape(-1)[:d])
        return out
    return run


def contenders() -> list[ImageContender]:
    return [
        ImageContender("xai lime", "xai", "lime", _xai("lime"),
                       "lime preset, budget=samples, segment-mean fill, one batched call",
                       ours=True),
        ImageContender("xai kernelshap", "xai", "shapley", _xai("kernelshap"),
                       "kernelshap summary, baseline='segment-mean', budget=samples", ours=True),
        ImageContender(f"xai lime (batch_size={OURS_BATCH})", "xai", "lime",
                       _xai("lime", batch_size=OURS_BATCH),
                       f"as xai lime, model called on at most {OURS_BATCH} rows at a time",
                       ours=True),
        ImageContender(f"xai kernelshap (batch_size={OURS_BATCH})", "xai", "shapley",
                       _xai("kernelshap", batch_size=OURS_BATCH),
                       f"as xai kernelshap, model called on at most {OURS_BATCH} rows at a "
                       "time", ours=True),
        ImageContender("lime LimeImageExplainer (batch_size=samples)", "lime", "lime",
                       _lime(None), "our segmentation as segmentation_fn, hide_color=None, "
                       "num_samples=samples, batch_size=num_samples (best)"),
        ImageContender("lime LimeImageExplainer (default batch_size=10)", "lime", "lime",
                       _lime(10), "our segmentation, hide_color=None, num_samples=samples, "
                       "default batch_size=10"),
        ImageContender("captum Lime (lime kernel, ridge)", "captum", "lime",
                       _captum("lime", lime_kernel=True),
                       "feature_mask=superpixels, similarity = lime's kernel (cosine, w=0.25) "
                       "on the binary vector, SkLearnRidge(alpha=1), ppe=samples"),
        ImageContender("captum Lime (defaults)", "captum", "other", _captum("lime"),
                       "feature_mask=superpixels, default similarity (exp kernel, cosine in "
                       "input space, w=1) and SkLearnLasso(alpha=0.01), ppe=samples"),
        ImageContender("shap Kernel (l1_reg=False)", "shap", "shapley", _shap_kernel(False),
                       "KernelExplainer over superpixel masks (vectorised fill), l1_reg=False"),
        ImageContender("shap Kernel (default l1_reg)", "shap", "shapley",
                       _shap_kernel("default"),
                       "KernelExplainer over superpixel masks, default l1_reg"),
        ImageContender("captum KernelShap (ppe=samples)", "captum", "shapley",
                       _captum("kernelshap"), "feature_mask=superpixels, "
                       "perturbations_per_eval=samples (best)"),
        ImageContender("captum KernelShap (default ppe=1)", "captum", "shapley",
                       _captum("kernelshap", ppe=1), "feature_mask=superpixels, default "
                       "perturbations_per_eval=1"),
    ]


NOT_APPLICABLE = {
    "shap Partition (Image masker)": "Owen values over shap's own hierarchy of pixel "
    "rectangles: the Image masker cannot take our superpixels, so it has neither our features "
    "nor the Shapley/LIME estimand (no error against either reference)",
    "captum ShapleyValueSampling / FeaturePermutation": "permutation estimators, not LIME or "
    "KernelSHAP (problem 1 compares Shapley estimators)",
    "lime LimeImageExplainer own segmentation": "quickshift by default: other features, so "
    "the segmentation is passed as segmentation_fn instead",
}


# -- measurement ------------------------------------------------------------------------------
def floor_seconds(module: torch.nn.Module, images: np.ndarray, n_rows: int,
                  repeats: int = 3) -> tuple[float, int]:
    """Time of a bare forward pass (no grad) over ``n_rows`` images (the explicands tiled):
    :func:`~.common.fastest_floor` over :data:`FLOOR_BATCHES`. Returns (seconds, batch size)."""
    return fastest_floor(module, images, n_rows, batches=FLOOR_BATCHES, repeats=repeats)


def relative_error(values: list[np.ndarray], ref: list[np.ndarray]) -> float:
    """Mean over images of ``|phi - ref|_2 / |ref|_2``."""
    return float(np.mean([np.linalg.norm(v - r) / max(np.linalg.norm(r), 1e-300)
                          for v, r in zip(values, ref)]))


def measure(c: ImageContender, problem: ImageProblem, samples: int, seeds: int,
            refs: dict, floors: dict | None = None) -> dict:
    """Warm-up, then one call per seed: median time, rows and calls counted, mean error."""
    c.run(problem, samples, 10_000)  # warm-up: imports, allocations
    times, errors, rows, calls = [], [], [], []
    for seed in range(seeds):
        problem.counter.reset()
        t = time.perf_counter()
        vals = c.run(problem, samples, seed)
        times.append(time.perf_counter() - t)
        rows.append(problem.counter.rows)
        calls.append(problem.counter.calls)
        ref = refs["shapley" if c.estimand == "shapley" else "lime"]
        errors.append(relative_error(vals, ref))
    med = statistics.median(times)
    floors = {} if floors is None else floors  # floor per row count, shared by contenders
    if rows[-1] not in floors:
        floors[rows[-1]] = floor_seconds(problem.module, problem.images, rows[-1])
    fl, fb = floors[rows[-1]]
    return {"seconds": med, "times": times, "evaluations": rows[-1], "floor_batch": fb,
            "evaluations_per_image": rows[-1] / len(problem.images), "model_calls": calls[-1],
            "floor_seconds": fl, "ratio_to_floor": med / fl, "error": float(np.mean(errors)),
            "error_sd": float(np.std(errors)), "errors": errors}


def run_problem(out: Path, sizes: dict, *, cache_dir: Path, only: list[str] | None = None,
                log: Callable = print, env: dict | None = None) -> dict:
    """Run every contender of problem 3; writes ``problem3.{json,md}``; returns the results."""
    from .common import environment

    env = env or environment()
    t0 = time.perf_counter()
    problem = load_image_problem(cache_dir=cache_dir, log=log, **sizes)
    log(f"[p3] {len(problem.images)} images {problem.images.shape[2:]}, superpixels "
        f"{problem.d}, targets {problem.targets.tolist()}, CNN held-out accuracy "
        f"{problem.test_accuracy:.3f}")
    refs = references(problem, sizes["reference_budget"], cache_dir)
    log(f"[p3] references at {sizes['reference_budget']} samples/image "
        f"({time.perf_counter() - t0:.0f}s so far)")
    floors: dict = {}
    rows = measure_contenders(
        contenders(), lambda c: measure(c, problem, sizes["samples"], sizes["seeds"], refs,
                                        floors),
        only=only, fields=("estimand", "settings"), tag="p3", log=log,
        describe=lambda c, r: (f"{c.name:48s} {r['seconds']:8.3f}s  floor "
                               f"{r['floor_seconds']:.3f}s  x{r['ratio_to_floor']:6.2f}  error "
                               f"{r['error']:.4f}  evals/img {r['evaluations_per_image']:.0f}  "
                               f"calls {r['model_calls']}"))
    res = {"problem": 3, **sizes, "superpixels": problem.d, "targets": problem.targets.tolist(),
           "classes": list(CLASSES), "test_accuracy": problem.test_accuracy, "rows": rows,
           "targets_met": targets(rows), "not_applicable": NOT_APPLICABLE}
    publish(out, "problem3", res, env, markdown, log)
    return res


def targets(rows: list[dict]) -> list[dict]:
    """Per estimand: ours' ratio to the floor (≤ 1.2) and error against the best peer's."""
    ok = [r for r in rows if r["status"] == "ok"]
    out = []
    for est in ("lime", "shapley"):
        ours = [r for r in ok if r["ours"] and r["estimand"] == est]
        peers = [r for r in ok if not r["ours"] and r["estimand"] == est]
        if not ours:
            continue
        o = ours[0]
        t = {"estimand": est, "ours": o["contender"], "ratio_to_floor": o["ratio_to_floor"],
             "time_target": TARGET_TIME, "time_met": bool(o["ratio_to_floor"] <= TARGET_TIME),
             "error": o["error"]}
        if peers:
            bp = min(peers, key=lambda r: r["error"])
            t.update(best_peer=bp["contender"], best_peer_error=bp["error"],
                     error_met=bool(o["error"] <= bp["error"]))
        out.append(t)
    return out


def markdown(res: dict, env: dict) -> str:
    out = [(f"# Problem 3: image explanations ({len(res['superpixels'])} images "
            f"{res['size']}x{res['size']}, SLIC superpixels {res['superpixels']}, "
            f"{res['samples']} samples, {res['seeds']} seeds)"), "", _env_line(env), "",
           ("time = median over seeds of explaining all images (after a warm-up call); floor = "
            "one bare forward pass over the images the counter saw, the fastest of batch "
            f"sizes {FLOOR_BATCHES}; error = mean relative L2 error against the reference of the "
            f"contender's estimand at {res['reference_budget']} samples/image (shapley: xai "
            "KernelSHAP; lime: the LIME surrogate of lime's defaults); 'other' = another "
            "estimand, scored against the lime reference. CNN held-out accuracy "
            f"{res['test_accuracy']:.3f}."), "",
           ("| contender | estimand | error | evals/image | seconds | floor s | ratio to floor | "
            "model calls |"), "|---|---|---|---|---|---|---|---|"]
    order = {"lime": 0, "other": 1, "shapley": 2}
    rows = sorted(res["rows"], key=lambda r: (r["status"] != "ok", order[r["estimand"]],
                                              r.get("error", 0)))
    for r in rows:
        name = f"**{r['contender']}**" if r["ours"] else r["contender"]
        if r["status"] != "ok":
            out.append(f"| {name} | {r['estimand']} | {r['status']}: {r['why']} | | | | | |")
            continue
        out.append(f"| {name} | {r['estimand']} | {r['error']:.4f} ± {r['error_sd']:.4f} | "
                   f"{r['evaluations_per_image']:.0f} | {r['seconds']:.3f} | "
                   f"{r['floor_seconds']:.3f} | {r['ratio_to_floor']:.2f} | "
                   f"{r['model_calls']} |")
    out += ["", "## targets", ""]
    for t in res["targets_met"]:
        line = (f"- {t['estimand']}: ours ({t['ours']}) {t['ratio_to_floor']:.2f}x floor "
                f"(target ≤ {t['time_target']}x) — **{'met' if t['time_met'] else 'not met'}**")
        if "best_peer" in t:
            line += (f"; error {t['error']:.4f} vs best peer ({t['best_peer']}) "
                     f"{t['best_peer_error']:.4f} — "
                     f"**{'met' if t['error_met'] else 'not met'}**")
        out.append(line)
    out += ["", "## peers that cannot do this problem", ""]
    out += [f"- {k}: {v}" for k, v in res["not_applicable"].items()]
    return "\n".join(out) + "\n"
