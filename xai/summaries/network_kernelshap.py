"""Regression-adjusted KernelSHAP with a small neural surrogate: the pairwise link-scale fit of
``ra-kernelshap`` plus a one-hidden-layer tanh network of the coalition mask, fitted per fold,
then KernelSHAP on the residual game (Witter, Liu & Musco, NeurIPS 2025, *Regression-adjusted
Monte Carlo Estimators for Shapley Values and Probabilistic Values*, whose proxy is any
model of the coalition values).

Why a network: the error of the residual correction scales with what the surrogate misses,
and a pairwise logit misses the higher-order interactions that saturating hidden units create.
``g(v(S)) ≈ g(v(∅)) + Σ a_i z_i + Σ b_ij z_i z_j + n(z) − n(0)`` with ``n(z) = w₂ᵀ tanh(W₁ z +
b₁)`` (``z`` the mask of ``S``, ``g`` the link) captures them with ``(d + 2) h`` parameters.
The network is fitted to the pairwise fit's link-scale residuals on the same training rows
(kernel weights, a small weight decay) by L-BFGS from a fixed start, every explicand's
network in one batched fit with its own history and line search, so that an explicand's result
depends on its own sampled values alone. The surrogate's Shapley values are exact, by enumerating its
``2^d`` coalitions (no model calls); cross-fitting, the residual fit on held-out pairs and its
sandwich standard error are those of ``ra-kernelshap``. Above ``max_exact_surrogate``
features the network is not fitted and the estimate is ``ra-kernelshap``'s.
"""

from __future__ import annotations

import math

import torch

from ..errors import InputError
from ..models import CALL_ROW_MULTIPLE, rowwise_matmul
from ..registry import register
from .exact import ExactShapley, enumerate_masks
from .regression import RegressionAdjustedKernelSHAP, quadratic_table, sum_products

RESIDUAL_TOL = 1e-9  # link-scale residuals of the pairwise fit below this: no network
#: ``steps="auto"``: this many L-BFGS iterations for fits on up to AUTO_STEPS_ROWS rows (a
#: fold's training rows at 1,024 model rows per explicand), growing with the sixth root of the
#: rows above (about 150 at 4,096): more data holds a longer fit without overfitting, and on
#: problem 1 the longer fit keeps half the error of the best 2026 peer at 4,096
AUTO_STEPS, AUTO_STEPS_ROWS = 120, 660
#: most features whose network surrogate is fitted (its Shapley values enumerate 2^d coalitions)
MAX_EXACT_SURROGATE = 16
#: columns (explicand and fold) whose network table is computed at once
TABLE_COLUMNS = 4


def _row_sums(A: torch.Tensor) -> torch.Tensor:
    """Each row's sum, computed for the row alone (:func:`~xai.models.rowwise_matmul`)."""
    return rowwise_matmul(A.contiguous(), torch.ones(A.shape[1], 1, dtype=A.dtype))[:, 0]


def _masked_sums(M: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``(m, rows, h)``: for each column ``m`` and 0/1 mask row, the sum of ``W[m]``'s rows
    ``(d, h)`` the mask keeps, added feature by feature (:func:`sum_products`), so that a
    column's values do not depend on the others."""
    m, d, h = W.shape
    flat = sum_products(M, W.permute(1, 0, 2).reshape(d, m * h))  # (rows, m h)
    return flat.view(len(M), m, h).permute(1, 0, 2)


class TanhCorrection:
    """One-hidden-layer tanh networks, one per column (explicand × output): ``n_c(z) −
    n_c(0)`` with ``n_c(z) = w₂ᵀ tanh(W₁ z + b₁)``; called on masks ``(rows, d)`` it gives
    ``(columns, rows)``."""

    def __init__(self, W1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor) -> None:
        self.W1, self.b1, self.w2 = W1, b1, w2  # (m, d, h), (m, h), (m, h)

    def __call__(self, M: torch.Tensor, cols: slice = slice(None)) -> torch.Tensor:
        W1, b1, w2 = self.W1[cols], self.b1[cols], self.w2[cols]
        return self._out(_masked_sums(M, W1) + b1[:, None], b1, w2, hidden_axis=2)

    @staticmethod
    def _out(pre: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
             hidden_axis: int) -> torch.Tensor:
        """``w₂ᵀ tanh(pre) − n(0)`` ``(m, rows)`` from pre-activations (overwritten), ``(m,
        rows, h)`` or ``(m, h, rows)`` as ``hidden_axis`` says: sums over the hidden units,
        each column's alone."""
        n0 = (torch.tanh(b1) * w2).sum(1, keepdim=True)
        return pre.tanh_().mul_(w2.unsqueeze(3 - hidden_axis)).sum(hidden_axis) - n0

    def table(self, d: int, cols: slice = slice(None), dtype=torch.float64) -> torch.Tensor:
        """Values ``(m, 2^d)`` on every coalition, rows in :func:`enumerate_masks` order,
        computed in ``dtype`` and returned in float64: the pre-activations ``W₁z`` are the sums
        of those of the low and the high half of the features (two ``2^(d/2)``-row products in
        place of one ``2^d``-row product), laid out hidden unit by hidden unit ``(m, h, 2^d)``,
        so that every pass over them, the sum over the units included, runs along the
        coalitions."""
        W1, b1, w2 = (p[cols].to(dtype) for p in (self.W1, self.b1, self.w2))
        c = d // 2
        low = _masked_sums(torch.as_tensor(enumerate_masks(c, 0, 2**c)), W1[:, :c])
        high = _masked_sums(torch.as_tensor(enumerate_masks(d - c, 0, 2**(d - c))), W1[:, c:])
        pre = (high.transpose(1, 2)[:, :, :, None] +
               (low + b1[:, None]).transpose(1, 2)[:, :, None, :]).reshape(len(W1), -1, 2**d)
        return self._out(pre, b1, w2, hidden_axis=1).double()


def auto_steps(rows: int) -> int:
    """L-BFGS iterations of ``steps="auto"`` for a fit on ``rows`` rows:
    :data:`AUTO_STEPS` up to :data:`AUTO_STEPS_ROWS` rows, times the sixth root of their ratio
    above."""
    return round(AUTO_STEPS * max(1.0, rows / AUTO_STEPS_ROWS) ** (1 / 6))


def lbfgs(fg, x: torch.Tensor, steps: int, history: int = 10,
          max_halvings: int = 12) -> torch.Tensor:
    """Minimise ``B`` independent problems at once: ``fg(x (b, P), idx (b,)) -> (f (b,), g (b,
    P))`` evaluates the problems ``idx`` (increasing). Limited-memory BFGS (Nocedal & Wright 2006,
    algorithm 7.4) with each problem's own history, scaling and backtracking Armijo line
    search, so that a problem's iterates depend on its own function alone. Each problem runs
    at its own pace: one batched evaluation serves every problem still moving, whether it tries
    the first step of a new iteration or a halved step of its line search, so that a problem's
    retries do not cost rounds of their own. A pair with ``sᵀy ≤ 0`` is not stored (its ``ρ``
    is 0); a problem stops after ``steps`` iterations, or where its line search fails
    ``max_halvings`` times (converged to rounding)."""
    B, P = x.shape
    x = x.clone()
    f, g = fg(x, torch.arange(B))
    S, Y = x.new_zeros(B, history, P), x.new_zeros(B, history, P)  # oldest first, per problem
    R = x.new_zeros(B, history)
    done, halvings = torch.zeros(B, dtype=torch.long), torch.zeros(B, dtype=torch.long)
    live = torch.full((B,), steps > 0)
    r, slope = _lbfgs_direction(g, S, Y, R, done > 0)
    t = torch.ones(B, dtype=x.dtype)
    while live.any():
        idx = live.nonzero()[:, 0]
        xt = x[idx] + t[idx, None] * r[idx]
        ft, gt = fg(xt, idx)
        ok = torch.isfinite(ft) & (ft <= f[idx] + 1e-4 * t[idx] * slope[idx])
        acc, rej = idx[ok], idx[~ok]
        s, y = xt[ok] - x[acc], gt[ok] - g[acc]
        sy = (s * y).sum(1)
        rho = torch.where(sy > 1e-10 * y.norm(dim=1) * s.norm(dim=1), 1 / sy.clamp_min(1e-30),
                          0.0)
        S[acc] = torch.cat([S[acc, 1:], s[:, None]], 1)
        Y[acc] = torch.cat([Y[acc, 1:], y[:, None]], 1)
        R[acc] = torch.cat([R[acc, 1:], rho[:, None]], 1)
        x[acc], f[acc], g[acc] = xt[ok], ft[ok], gt[ok]
        done[acc] += 1
        halvings[rej] += 1
        t[rej] /= 2
        live[idx] = (done[idx] < steps) & (halvings[idx] < max_halvings)
        new = acc[live[acc]]  # a new iteration: its direction, a unit step
        if len(new):
            r[new], slope[new] = _lbfgs_direction(g[new], S[new], Y[new], R[new], done[new] > 0)
            t[new], halvings[new] = 1.0, 0
    return x


def _lbfgs_direction(g: torch.Tensor, S: torch.Tensor, Y: torch.Tensor, R: torch.Tensor,
                     started: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`lbfgs`'s search directions ``(b, P)`` and slopes ``(b,)`` by the two-loop
    recursion over each problem's history ``(b, m, P)``, oldest first (pairs not yet made are
    zero and add nothing); a first step (not ``started``) has unit length, and steepest
    descent replaces a direction that does not descend."""
    q, alphas = -g, []
    for j in reversed(range(S.shape[1])):
        a = R[:, j] * (S[:, j] * q).sum(1)
        q = q - a[:, None] * Y[:, j]
        alphas.append(a)
    s, y, rho = S[:, -1], Y[:, -1], R[:, -1]
    yy = (y * y).sum(1)
    gamma = torch.where((rho > 0) & (yy > 0), (s * y).sum(1) / yy.clamp_min(1e-30), 1.0)
    gamma = torch.where(started, gamma, 1 / g.norm(dim=1).clamp_min(1e-12))
    r = gamma[:, None] * q
    for j, a in enumerate(reversed(alphas)):
        r = r + S[:, j] * (a - R[:, j] * (Y[:, j] * r).sum(1))[:, None]
    slope = (g * r).sum(1)
    r = torch.where((slope < 0)[:, None], r, -g)
    return r, (g * r).sum(1)


def fit_tanh(sets: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], hidden: int,
             weight_decay: float, steps: int) -> tuple[torch.Tensor, ...]:
    """``(W₁ (B, d, h), b₁ (B, h), w₂ (B, h))`` minimising, for each target row ``b`` of each
    training set ``(M (rows, d), w (rows,), y (B_s, rows))`` in ``sets`` (rows in set order),
    ``Σ w (y_b − n_b(z) + n_b(0))² / Σ w + λ ‖θ_b‖²`` over the set's masks ``M``, by one
    :func:`lbfgs` over every set's problems, on inputs centred to ``2z − 1`` (the same
    functions, a better-conditioned fit) in single precision, from a fixed start: uniform
    weights of the usual ``1/√fan_in`` scale, the output layer scaled down 100 times (close to
    the zero correction). A problem's fit does not depend on the other problems or sets."""
    d, h = sets[0][0].shape[1], hidden
    data = [(2 * M.float() - 1, (w / w.sum()).float(), y.float()) for M, w, y in sets]
    starts = [0]
    for _, _, y in data:
        starts.append(starts[-1] + len(y))
    gen = torch.Generator().manual_seed(0)
    x0 = (torch.rand(d * h + 2 * h, generator=gen) * 2 - 1)
    x0[:d * h + h] /= math.sqrt(d)
    x0[d * h + h:] /= 100 * math.sqrt(h)
    x0 = x0.expand(starts[-1], -1).clone()

    def unpack(x):
        return x[:, :d * h].reshape(len(x), d, h), x[:, d * h:d * h + h], x[:, d * h + h:]

    def fg(x, idx):  # idx increasing: each set's problems are a contiguous run of x
        out = [tanh_loss_grad(x[sel], U, wn, y[idx[sel] - a], h, weight_decay)
               for (U, wn, y), a, b in zip(data, starts, starts[1:])
               if (sel := (idx >= a) & (idx < b)).any()]
        return torch.cat([f for f, _ in out]), torch.cat([g for _, g in out])

    W1, b1, w2 = (p.double() for p in unpack(lbfgs(fg, x0, steps)))
    return 2 * W1, b1 - W1.sum(1), w2  # on z: W₁ᵀ(2z − 1) + b₁ = 2W₁ᵀz + b₁ − W₁ᵀ1


def tanh_loss_grad(x: torch.Tensor, U: torch.Tensor, wn: torch.Tensor, y: torch.Tensor,
                   h: int, weight_decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fit_tanh`'s objective ``(b,)`` and its gradient ``(b, P)`` for parameters ``x
    (b, P)`` (``W₁ (d, h)``, ``b₁ (h)``, ``w₂ (h)`` flattened), centred masks ``U (rows,
    d)``, normalised weights ``wn (rows,)`` and targets ``y (b, rows)``: the backward pass
    written out (two products of ``U``, no autograd graph); :func:`tanh_loss_grad_autograd`
    is the reference it is tested against."""
    b, (rows, d) = len(x), U.shape
    W1, b1, w2 = x[:, :d * h].reshape(b, d, h), x[:, d * h:d * h + h], x[:, d * h + h:]
    H = (U @ W1.permute(1, 0, 2).reshape(d, b * h)).view(rows, b, h).add_(b1).tanh_()
    t0 = torch.tanh(b1 - W1.sum(1))  # n(∅) = w₂ᵀ t0: the centred empty coalition is −1
    r = (H * w2).sum(2) - (t0 * w2).sum(1) - y.T  # (rows, b)
    dr = (2 * r).mul_(wn[:, None])  # ∂f/∂r
    # every sum over rows is a row of one product (rowwise_matmul) with every problem's
    # terms side by side against [U, 1]: a problem's sums are then the same bits in a batch
    # of any size and with any number of threads, which a reduction of a (b, rows) or (rows,
    # b, h) tensor, or one BLAS product over all rows, is not. The terms are written into
    # its left factor T in place: (1 − H²) ∂f/∂r (∂f/∂(U W₁ + b₁) over w₂, which multiplies
    # the sums instead), H ∂f/∂r, ∂f/∂r and r ∂f/∂r
    bh, n = b * h, 2 * b * h + 2 * b
    T = U.new_empty(rows, -(-n // CALL_ROW_MULTIPLE) * CALL_ROW_MULTIPLE)
    T[:, n:] = 0
    Hdr = torch.mul(H, dr[:, :, None], out=T[:, bh:2 * bh].view(rows, b, h))
    E = torch.mul(H, Hdr, out=T[:, :bh].view(rows, b, h))
    torch.sub(dr[:, :, None], E, out=E)
    T[:, 2 * bh:2 * bh + b] = dr
    torch.mul(r, dr, out=T[:, 2 * bh + b:n])
    sums = rowwise_matmul(T.T, torch.cat([U, torch.ones(rows, 1, dtype=U.dtype)], 1))
    s, f = sums[2 * bh:2 * bh + b, d, None], sums[2 * bh + b:n, d] / 2  # −∂f/∂n(∅)
    f = f + weight_decay * _row_sums(x * x)
    dA0 = -s * w2 * (1 - t0 * t0)  # ∂f/∂(b₁ − Σ_d W₁)
    g_W1 = sums[:bh, :d].view(b, h, d).permute(0, 2, 1) * w2[:, None] - dA0[:, None]
    g_b1 = sums[:bh, d].view(b, h) * w2 + dA0
    g_w2 = sums[bh:2 * bh, d].view(b, h) - s * t0  # Σ_rows ∂f/∂r · H
    g = torch.cat([g_W1.reshape(b, d * h), g_b1, g_w2], 1) + 2 * weight_decay * x
    return f, g


def tanh_loss_grad_autograd(x: torch.Tensor, U: torch.Tensor, wn: torch.Tensor,
                            y: torch.Tensor, h: int, weight_decay: float
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`tanh_loss_grad` by autograd: the plain reference implementation."""
    b, (rows, d) = len(x), U.shape
    x = x.detach().requires_grad_()
    W1, b1, w2 = x[:, :d * h].reshape(b, d, h), x[:, d * h:d * h + h], x[:, d * h + h:]
    H = torch.tanh((U @ W1.permute(1, 0, 2).reshape(d, b * h)).reshape(rows, b, h) + b1)
    n0 = (torch.tanh(b1 - W1.sum(1)) * w2).sum(1)
    r = (H * w2).sum(2).T - n0[:, None] - y
    f = (r**2 * wn).sum(1) + weight_decay * (x**2).sum(1)
    (g,) = torch.autograd.grad(f.sum(), x)
    return f.detach(), g


@register("summary", "ra-kernelshap-net", aliases=("network-kernelshap",))
class NetworkAdjustedKernelSHAP(RegressionAdjustedKernelSHAP):
    """Shapley values by KernelSHAP with a cross-fitted surrogate: the pairwise link-scale fit
    of ``ra-kernelshap`` plus a one-hidden-layer tanh network (exact surrogate Shapley values
    by enumeration, ``d <= max_exact_surrogate``); sandwich SE of the residual fits.

    ``hidden``: hidden units of the network. ``weight_decay``: its L2 penalty (relative to the
    kernel-weighted mean squared residual). ``steps``: L-BFGS iterations per fit (one fit per
    fold, explicand and output); ``"auto"``: :func:`auto_steps` of the fit's rows (120 up to
    1,024 model rows per explicand, about 150 at 4,096). The other options are
    ``ra-kernelshap``'s; ``folds`` defaults to 2 here. The defaults (16 units, auto steps, 2
    folds) are the cheapest setting measured at half the error of the best 2025-2026
    estimator in shapiq 1.8.0 on a d = 16 MLP; ``steps=300, folds=3`` fits longer, for about
    0.8x that error at 3x the time.
    """

    name = "ra-kernelshap-net"

    def __init__(self, *, budget=None, tol=None, seed=None, min_units=32,
                 enumerate_strata: bool = True, folds: int = 2, link: str = "auto",
                 interactions: bool | str = "auto",
                 max_exact_surrogate: int = MAX_EXACT_SURROGATE, surrogate_samples: int = 2**15,
                 hidden: int = 16, weight_decay: float = 1e-5,
                 steps: int | str = "auto") -> None:
        super().__init__(budget=budget, tol=tol, seed=seed, min_units=min_units,
                         enumerate_strata=enumerate_strata, folds=folds, link=link,
                         interactions=interactions, max_exact_surrogate=max_exact_surrogate,
                         surrogate_samples=surrogate_samples)
        if int(hidden) < 1 or not (steps == "auto" or isinstance(steps, int) and steps >= 1):
            raise InputError(f"hidden must be at least 1 and steps an integer of at least 1 or "
                             f"'auto', got hidden={hidden!r}, steps={steps!r}")
        if not float(weight_decay) >= 0:
            raise InputError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.hidden, self.weight_decay = int(hidden), float(weight_decay)
        self.steps = steps

    def fit_corrections(self, folds, state):
        d, h = folds[0][0].shape[1], self.hidden
        if d > self.max_exact_surrogate:
            return [None] * len(folds)  # Shapley values would need sampling: ra-kernelshap's
        # where the pairwise fit already represents the game (to rounding), no network: the
        # estimate stays exact there, and a feature the game ignores keeps exactly zero
        fit = [resid.abs().amax(1) > RESIDUAL_TOL for _, _, resid in folds]
        sets = [(M, w, resid[keep]) for (M, w, resid), keep in zip(folds, fit) if keep.any()]
        steps = auto_steps(max(len(M) for M, _, _ in folds)) if self.steps == "auto" \
            else self.steps
        params = fit_tanh(sets, h, self.weight_decay, steps) if sets else None
        corrs, start = [], 0
        for (_, _, resid), keep in zip(folds, fit):
            W1, b1, w2 = (torch.zeros(len(resid), *shape, dtype=torch.float64)
                          for shape in ((d, h), (h,), (h,)))
            n = int(keep.sum())
            if n:
                W1[keep], b1[keep], w2[keep] = (p[start:start + n] for p in params)
                start += n
            corrs.append(TanhCorrection(W1, b1, w2))
        return corrs

    def _surrogate_shapley(self, fits, g0, g, ginv, link, d, state):
        """Exact Shapley values ``(K, m, d)`` of each fold's surrogate ``ginv(g0 + pairwise +
        network)`` by enumerating its ``2^d`` coalitions (no model calls), columns in blocks
        under ``memory_cap``; variance 0."""
        if all(corr is None for _, _, corr in fits):
            return super()._surrogate_shapley(fits, g0, g, ginv, link, d, state)
        K, m, N = len(fits), len(g0), 2**d
        masks = enumerate_masks(d, 0, N)
        coef = torch.as_tensor(ExactShapley().coefficients(masks))  # (N, d)
        # columns per block: a few, whose tables (2^d rows by the hidden units) stay near the
        # cache (2.5x faster per column at d = 16 than a block of 20), and under memory_cap
        cb = int(max(1, min(m, TABLE_COLUMNS, state["memory_cap"] // (8 * N * (self.hidden + 2)))))
        phi = torch.zeros(K, m, d, dtype=torch.float64)
        one = torch.ones(1, d, dtype=torch.float64)
        for k, (c, pairs, corr) in enumerate(fits):
            for c0 in range(0, m, cb):
                c1 = min(m, c0 + cb)
                T = quadratic_table(c[:, c0:c1], d, pairs, g0[c0:c1].T)  # (N, cb) link scale
                T += corr.table(d, slice(c0, c1), torch.float32).T  # the network's share
                phi[k, c0:c1] = rowwise_matmul(ginv(T).T, coef)
                # the single-precision table's rounding, spread evenly: the values sum to
                # f(D) − f(∅) in double precision, as the residual fit's constraint assumes
                top = g0[c0:c1, 0] + _row_sums(c[:, c0:c1].T) + corr(one, slice(c0, c1))[:, 0]
                gap = ginv(top) - ginv(g0[c0:c1, 0]) - _row_sums(phi[k, c0:c1])
                phi[k, c0:c1] += gap[:, None] / d
        return phi, torch.zeros(m, d, dtype=torch.float64)

    def describe(self):
        out = super().describe()
        out.update({"hidden": self.hidden, "weight_decay": self.weight_decay,
                    "steps": self.steps})
        return out
