"""The game's fast paths equal their plain definitions: synthetic inputs built by broadcasting
(per map position, ``lerp`` / bitwise selection) equal ``where(mask, x, replacement)`` element by
element; the packed-row dedupe equals ``np.unique``; the chunk-size rule respects the user's
``batch_size`` and the memory cap; the blocked finiteness check names the first bad index; the
two-logit softmax equals ``torch.softmax``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import fingerprint_model, zero_patch_images

from xai.behaviours import Prediction, to_probability
from xai.errors import InputError
from xai.features import FeatureMap
from xai.game import Game, row_sum, unique_rows
from xai.models import CALL_ROW_MULTIPLE, CallableModel, as_model
from xai.planner import (
    CPU_BLOCK_BYTES,
    CPU_CHUNK_BYTES,
    CPU_MAX_ROWS,
    CPU_MIN_ROWS,
    DEFAULT_MAX_BATCH,
    pair_blocks,
)
from xai.removals import (
    Baseline,
    Blur,
    ConditionalGaussian,
    Marginal,
    ProductMarginal,
    _as_rows,
    check_finite,
)


def naive_raw(game: Game, rows: np.ndarray, masks: np.ndarray, shared: bool) -> torch.Tensor:
    """Per-draw outputs ``(P, K, k)`` with synthetic inputs built the plain way: a mask value per
    input element (full index), ``where`` / ``m*x + (1-m)*r`` per pair, one pair at a time."""
    if shared:
        pairs = [(r, m) for r in rows for m in masks]
    else:
        pairs = list(zip(rows, masks))
    outs = []
    for r, m in pairs:
        rt = torch.as_tensor([r])
        x = game.X[rt]
        mt = torch.as_tensor(m)[None]
        ext = torch.cat([mt, torch.ones(1, 1, dtype=mt.dtype)], 1)
        idx = game.ctx.index_of(rt)
        mpos = torch.gather(ext, 1, idx.expand(1, -1))
        repl = game.removal.replacement(x, rt, mt, 0, game.K)
        if mt.dtype == torch.bool:
            synth = torch.where(mpos[:, None, :], x[:, None, :], repl)
        else:
            mp = mpos.to(x.dtype)[:, None, :]
            synth = mp * x[:, None, :] + (1 - mp) * repl
        synth = synth.expand(1, game.K, x.shape[1])
        outs.append(game.model(synth.reshape(-1, *game.input_shape)))
    return torch.stack(outs).reshape(len(pairs), game.K, -1)


def _images(n, shape, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _cases():
    rng = np.random.default_rng(1)
    cases = []
    # tabular, identity map, float64, fixed baseline
    X = rng.standard_normal((4, 6))
    cases.append(("tabular", X, FeatureMap.tabular(6), lambda: Baseline(0.5), False))
    # grouped columns with an always-kept column, marginal background (K = 5)
    fm = FeatureMap.groups({"a": [0, 2], "b": [1], "c": [3, 4]}, 6, fixed=[5])
    cases.append(("groups+marginal", X, fm, lambda: Marginal(rng.standard_normal((5, 6))),
                  False))
    cases.append(("conditional-gaussian", X, FeatureMap.tabular(6),
                  lambda: ConditionalGaussian(rng.standard_normal((30, 6)), n_samples=3), False))
    cases.append(("product-marginal", X, FeatureMap.tabular(6),
                  lambda: ProductMarginal(rng.standard_normal((7, 6)), n_samples=4), False))
    # images, channels first: a map per position broadcast over channels
    imgs = _images(3, (3, 8, 8))
    cases.append(("chw patches", imgs, FeatureMap.patches((8, 8), 4, channel_axis=0),
                  lambda: Baseline("segment-mean"), False))
    cases.append(("chw blur fractional", imgs, FeatureMap.patches((8, 8), 4, channel_axis=0),
                  lambda: Blur(1.0), True))
    # channels last: one mask value per element
    cases.append(("hwc patches", _images(2, (8, 8, 3)),
                  FeatureMap.patches((8, 8), 4, channel_axis=2),
                  lambda: Marginal(_images(3, (8, 8, 3), seed=5)), False))
    # per-explicand maps (superpixels-like)
    idx = np.stack([np.arange(64).reshape(8, 8) % k for k in (5, 5, 5)])
    fm = FeatureMap(idx, channel_axis=0, per_explicand=True)
    cases.append(("per-explicand maps", imgs, fm, lambda: Baseline("segment-mean"), False))
    cases.append(("per-explicand fractional", imgs, fm, lambda: Baseline(0.25), True))
    return cases


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
@pytest.mark.parametrize("batch", [None, 3])
def test_synthetic_inputs_equal_plain_where(case, batch):
    _, X, fm, removal, fractional = case
    D = int(np.prod(X.shape[1:]))
    game = Game(fingerprint_model(D), X, removal(), Prediction(target=0, output="raw"), fm,
                seed=0, batch_size=batch)
    game._prepare()
    rng = np.random.default_rng(2)
    m = 7
    masks = rng.random((m, game.d)) < 0.5
    if fractional:
        masks = np.where(masks, rng.random((m, game.d)), 0.0)
    rows = np.array([2, 0, 1]) if game.n > 2 else np.array([1, 0])
    for shared in (True, False):
        mk = masks if shared else masks[:len(rows)]
        got = game._averaged(rows, mk, raw=True, shared=shared)
        want = naive_raw(game, rows, mk, shared)
        if isinstance(game.removal, ConditionalGaussian):  # its own matmuls depend on batching
            assert torch.allclose(got, want, rtol=1e-12, atol=1e-12)
        else:
            assert torch.equal(got, want)


@pytest.mark.parametrize("case", [c for c in _cases() if not c[4]], ids=lambda c: c[0])
def test_pairs_built_over_the_explicands_copy_leave_the_explicands_alone(case):
    """One boolean mask and one draw per pair: the synthetic inputs are written over the
    gathered explicands; the game's explicands stay as they were, and the values equal those
    of the same pairs evaluated as a grid (every row with every mask)."""
    _, X, fm, removal, _ = case
    D = int(np.prod(X.shape[1:]))
    game = Game(fingerprint_model(D), X, removal(), Prediction(target=0, output="raw"), fm,
                seed=0)
    game._prepare()
    before = game.X.clone()
    masks = np.random.default_rng(4).random((5, game.d)) < 0.5
    rows = np.arange(min(game.n, 3))
    pairs = game._averaged(np.repeat(rows, 5), np.tile(masks, (len(rows), 1)), raw=True)
    grid = game._averaged(rows, masks, raw=True, shared=True)
    assert torch.equal(game.X, before)
    assert torch.equal(pairs, grid)


def test_replacements_near_the_dtype_limit_select_instead_of_interpolating():
    """A baseline above half the dtype's largest value (x - r could overflow): the game
    selects (``where``) instead of ``lerp``, per row and per grid, and the inputs are exactly
    the explicand's or the baseline's values (a fingerprint of arcsinh stays finite)."""
    W = np.random.default_rng(3).standard_normal((3, 6))
    model = CallableModel(lambda x: np.stack([(np.arcsinh(np.asarray(x, dtype=np.float64))
                                               * w).sum(1) for w in W], 1), output_kind="raw")
    big = 1.5e308  # over half of float64's largest value
    X = np.random.default_rng(0).normal(size=(3, 6))
    removal = Baseline(np.array([big, -big, 1.0, big, 0.5, -1.0]))
    game = Game(model, X, removal, Prediction(target=0, output="raw"), FeatureMap.tabular(6),
                seed=0)
    game._prepare()
    masks = np.random.default_rng(1).random((4, 6)) < 0.5
    rows = np.array([2, 0, 1])
    assert not game.inputs.lerp_safe(game.removal.replacement(game.X, torch.arange(3), None, 0, 1))
    grid = game._averaged(rows, masks, raw=True, shared=True)
    assert torch.equal(grid, naive_raw(game, rows, masks, True))
    pairs = game._averaged(rows, masks[:3], raw=True)
    assert torch.equal(pairs, naive_raw(game, rows, masks[:3], False))


def test_grid_blocks_cover_every_pair_once():
    for nr, mu, cb in [(5, 7, 3), (5, 7, 7), (5, 7, 20), (1, 1, 1), (3, 100, 33), (9, 2, 5)]:
        seen = np.zeros((nr, mu), dtype=int)
        for i0, i1, j0, j1 in pair_blocks(nr, mu, cb, True):
            assert (i1 - i0) * (j1 - j0) <= cb or (i1 - i0 == 1 and j1 - j0 <= cb)
            seen[i0:i1, j0:j1] += 1
        assert (seen == 1).all()


def test_blocks_of_masks_and_pairs_are_whole_multiples_of_a_padded_call():
    for nr, mu, cb in [(4, 1000, 80), (3, 500, 90), (50, 1, 70), (2, 40, 100)]:
        sizes = [(i1 - i0) * max(1, j1 - j0) for i0, i1, j0, j1 in
                 pair_blocks(nr, mu, cb, mu >= cb or nr == 50)]
        assert all(size <= cb for size in sizes)
        padded = [size for size in sizes if size % CALL_ROW_MULTIPLE]
        assert len(padded) <= (nr if mu >= cb else 1)  # a row's last block or the last block
    assert [j1 - j0 for _, _, j0, j1 in pair_blocks(1, 20, 10, True)] == [10, 10]  # cb < 16


def test_a_torch_call_pads_only_its_last_rows_in_a_call_of_their_own():
    sizes = []
    model = as_model(_Head(sizes), output_kind="raw")
    x = torch.as_tensor(np.random.default_rng(0).standard_normal((75, 16)))
    out = model(x)
    assert sizes == [64, CALL_ROW_MULTIPLE]  # 64 rows as they are, 11 padded to 16
    alone = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    assert torch.equal(out, alone) and model.evaluations == 75 + 75


def test_token_inputs_select_bitwise():
    X = np.array([[5, 7, 9, 11], [1, 2, 3, 4]])
    game = Game(fingerprint_model(4), X, Baseline(0), Prediction(target=0, output="raw"),
                FeatureMap.tokens(4, fixed=[0]), seed=0, kind="tokens")
    game._prepare()
    masks = np.array([[True, False, True], [False, False, False], [True, True, True]])
    got = game._averaged(np.arange(2), masks, raw=True, shared=True)
    assert torch.equal(got, naive_raw(game, np.arange(2), masks, True))


def test_huge_values_fall_back_to_where():
    big = np.finfo(np.float32).max * 0.9
    X = np.array([[big, -big, 1.0]], dtype=np.float32)
    game = Game(fingerprint_model(3), X, Baseline(np.array([-big, big, -0.0], np.float32)),
                Prediction(target=0, output="raw"), FeatureMap.tabular(3), seed=0)
    game._prepare()
    masks = np.array([[True, False, True], [False, True, False]])
    got = game._averaged(np.arange(1), masks, raw=True, shared=True)
    assert torch.isfinite(got).all()
    assert torch.equal(got, naive_raw(game, np.arange(1), masks, True))


@pytest.mark.parametrize("d", [1, 5, 8, 16, 63, 64, 65, 200])
def test_unique_rows_equals_np_unique(d):
    rng = np.random.default_rng(d)
    M = rng.random((40, d)) < 0.4
    M = np.concatenate([M, M[::-1], np.zeros((2, d), bool), np.ones((1, d), bool)])
    uniq, inv, packed = unique_rows(M)
    ref, ref_inv = np.unique(M, axis=0, return_inverse=True)
    assert np.array_equal(uniq, ref)
    assert np.array_equal(inv, ref_inv.ravel())
    assert np.array_equal(packed, np.packbits(ref, axis=1))
    assert np.array_equal(uniq[inv], M)
    u0, i0, _ = unique_rows(np.zeros((0, d), bool))
    assert u0.shape == (0, d) and i0.shape == (0,)


class _Head(torch.nn.Module):
    """A torch module returning the first two input values of each row (and, optionally,
    recording the rows of each call)."""

    def __init__(self, sizes: list | None = None) -> None:
        super().__init__()
        self.sizes = sizes

    def forward(self, x):
        if self.sizes is not None:
            self.sizes.append(len(x))
        return x.reshape(len(x), -1)[:, :2]


def _image_game(shape=(3, 64, 64), cap=None, batch=None, model_batch=None):
    X = _images(2, shape)
    model = as_model(_Head(), output_kind="raw")
    model.batch_size = model_batch
    return Game(model, X, Baseline(0.0), Prediction(target=0, output="raw"),
                FeatureMap.patches(shape[1:], 8, channel_axis=0), memory_cap=cap,
                batch_size=batch)


def test_a_torch_module_on_a_cpu_gets_cache_sized_calls():
    game = _image_game()
    game.k = 2
    row = 3 * 64 * 64 * game.X.element_size()
    call = max(CPU_MIN_ROWS, CPU_CHUNK_BYTES // row)
    call -= call % CALL_ROW_MULTIPLE  # whole multiples of a padded call's rows
    assert game._call_rows() == call
    assert game._rows_per_call() == max(call, CPU_BLOCK_BYTES // row)
    tab = Game(as_model(_Head(), output_kind="raw"), np.ones((2, 16)), Baseline(0.0),
               Prediction(target=0, output="raw"), FeatureMap.tabular(16))
    tab.k = 1
    row = 16 * tab.X.element_size()
    assert tab._call_rows() == CPU_MAX_ROWS  # small rows: at most CPU_MAX_ROWS per call
    assert tab._rows_per_call() == min(DEFAULT_MAX_BATCH, CPU_BLOCK_BYTES // row)
    big = _image_game(shape=(3, 256, 256))  # a row over the chunk bytes: the minimum rows
    big.k = 2
    assert big._call_rows() == CPU_MIN_ROWS == big._rows_per_call()


def test_functions_and_estimators_get_large_calls():
    """A plain function (or a scikit-learn estimator) pays a fixed cost per call: a block is
    one call of up to DEFAULT_MAX_BATCH rows."""
    tab = Game(fingerprint_model(16), np.ones((2, 16)), Baseline(0.0),
               Prediction(target=0, output="raw"), FeatureMap.tabular(16))
    tab.k = 1
    assert tab._call_rows() is None
    assert tab._rows_per_call() == DEFAULT_MAX_BATCH
    sizes = []

    def f(x):
        sizes.append(len(x))
        return np.asarray(x).reshape(len(x), -1)[:, :2]
    X = np.random.default_rng(0).standard_normal((3, 16))
    masks = np.random.default_rng(1).random((9000, 16)) < 0.5
    game = Game(as_model(f, output_kind="raw"), X, Baseline(0.0),
                Prediction(target=0, output="raw"), FeatureMap.tabular(16))
    game(masks)
    assert CPU_MAX_ROWS < max(sizes) <= DEFAULT_MAX_BATCH  # one call per block
    assert sum(sizes) == game.rows_evaluated


def test_model_calls_split_blocks_into_cache_sized_calls():
    sizes = []
    X = np.random.default_rng(0).standard_normal((3, 16))
    masks = np.random.default_rng(1).random((9000, 16)) < 0.5
    game = Game(as_model(_Head(sizes), output_kind="raw"), X, Baseline(0.0),
                Prediction(target=0, output="raw"), FeatureMap.tabular(16))
    v = game(masks)
    # each call is padded to a whole multiple of CALL_ROW_MULTIPLE rows, uncounted
    assert max(sizes[1:]) == CPU_MAX_ROWS and all(s % CALL_ROW_MULTIPLE == 0 for s in sizes)
    assert 0 <= sum(sizes) - game.rows_evaluated < CALL_ROW_MULTIPLE * len(sizes)
    sizes.clear()
    ref = Game(as_model(_Head(sizes), output_kind="raw"), X, Baseline(0.0),
               Prediction(target=0, output="raw"), FeatureMap.tabular(16),
               batch_size=5000)(masks)
    assert CPU_MAX_ROWS < max(sizes) <= 5000
    assert torch.equal(v, ref)


def test_chunk_rule_respects_batch_size_and_memory_cap():
    game = _image_game(batch=500)
    game.k = 2
    assert game._rows_per_call() == 500  # the user's batch_size wins over the cache rule
    game = _image_game(model_batch=300)
    game.k = 2
    assert game._rows_per_call() == 300  # so does the adapter's
    row = 3 * 64 * 64 * (4 * 4 + 1) + 8 * 2 * 2  # float32 inputs (the module's dtype)
    game = _image_game(cap=10 * row)
    game.k = 2
    assert game._rows_per_call() == 10  # the memory cap wins over both
    game = _image_game(cap=10 * row, batch=1000)
    game.k = 2
    assert game._rows_per_call() == 10


def test_chunked_values_do_not_depend_on_the_chunk_size():
    X = _images(2, (3, 16, 16))
    fm = FeatureMap.patches((16, 16), 4, channel_axis=0)
    masks = np.random.default_rng(0).random((50, fm.d)) < 0.5
    vals = [Game(fingerprint_model(768), X, Baseline(0.0), Prediction(target=0, output="raw"),
                 fm, batch_size=b)(masks) for b in (None, 1, 7, 64)]
    for v in vals[1:]:
        assert torch.equal(v, vals[0])


@pytest.mark.parametrize("shape", [(9,), (7, 3), (10, 3, 4, 4)])
@pytest.mark.parametrize("block", [1, 16, 10**9])
def test_check_finite_blocks_name_the_first_bad_index(shape, block):
    t = torch.randn(shape)
    check_finite(t, "x", block_bytes=block)
    flat = t.view(-1)
    flat[7] = float("nan")
    flat[-1] = float("inf")
    first = tuple(int(i) for i in np.unravel_index(7, shape))
    with pytest.raises(InputError, match=rf"x contains 2 NaN.*first at index \({first[0]},"):
        check_finite(t, "x", block_bytes=block)
    with pytest.raises(InputError) as err:
        check_finite(t.numpy(), "x", block_bytes=block)
    assert str(first) in str(err.value)


def test_as_rows_keeps_float32_without_a_float64_copy():
    X = torch.zeros(1, 3, 4, 4)
    from xai.removals import GameContext
    ctx = GameContext(X.reshape(1, -1), torch.zeros(1, 48, dtype=torch.long), 1, (3, 4, 4), 0,
                      np.random.SeedSequence(0), "image")
    bg = np.random.default_rng(0).standard_normal((5, 3, 4, 4)).astype(np.float32)
    rows = _as_rows(bg, "background", ctx)
    assert rows.dtype == torch.float32
    assert torch.equal(rows, torch.as_tensor(bg).reshape(5, -1))
    as_list = _as_rows(bg.astype(np.float64).tolist(), "background", ctx)
    assert torch.equal(as_list, rows)


@pytest.mark.parametrize("scale", [1.0, 30.0, 800.0])
def test_two_logit_softmax_equals_torch_softmax(scale):
    logits = torch.randn(1000, 3, 2, dtype=torch.float64) * scale
    p = to_probability(logits, "logits")
    ref = torch.softmax(logits, -1)
    assert torch.allclose(p, ref, rtol=4 * torch.finfo(torch.float64).eps, atol=1e-300)
    assert torch.allclose(p.sum(-1), torch.ones(1000, 3, dtype=torch.float64), rtol=0, atol=4e-16)
    p32 = to_probability(logits.float(), "logits")
    ref32 = torch.softmax(logits.float(), -1)
    assert torch.allclose(p32, ref32, rtol=4 * torch.finfo(torch.float32).eps,
                          atol=1e-37)


def test_coalition_cache_stops_at_its_limit_and_keeps_values_right():
    """A cache smaller than the coalitions asked for remembers the first ones only; every
    value, cached or not, equals a fresh game's."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3, 10))
    w = rng.normal(size=10)

    def lin(Z):
        return np.tanh(np.asarray(Z) @ w)[:, None]

    def make():
        return Game(as_model(lin), X, Baseline(np.zeros(10)), Prediction(),
                    FeatureMap.tabular(10))
    g = make()
    per_column = g.n * 8
    g.cache.memory_cap = 20 * per_column  # room for 20 coalitions
    masks = rng.random((50, 10)) < 0.5
    first = g(masks)
    assert len(g.cache) == 20 and g.cache.table.shape[1] <= 20
    again = g(masks[::-1])
    np.testing.assert_array_equal(again.numpy()[:, ::-1], first.numpy())
    np.testing.assert_allclose(first, make()(masks), rtol=1e-12)  # other blocks: ulps


@pytest.mark.parametrize("output", ["probability", "log-odds", "raw"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_value_of_one_draw_is_the_behaviour_of_the_scaled_output(output, k):
    """One baseline draw of weight 1 takes the behaviour's short path (only the target's
    probability for two logits); it equals the general ``behaviour(on_scale(out))`` bit for
    bit, for per-row targets of both classes, every output scale and ``target="all"``."""
    rng = np.random.default_rng(k)
    full = torch.as_tensor(rng.normal(size=(6, k)) * 3)
    out = torch.as_tensor(rng.normal(size=(40, k)) * 3)
    rows = torch.as_tensor(rng.integers(0, 6, size=40))
    two = 2 if output != "raw" else 1
    targets = [None, np.array([0, 1, 0, 1, 1, 0]) % max(k, two), 0, (k > 1 or two > 1) * 1]
    for target in targets + (["all"] if k > 1 else []):
        b = Prediction(target=target, output=output)
        b.prepare(full, None, "logits", True)
        fast = b.value_of_draw(out, rows)
        assert torch.equal(fast, b(b.on_scale(out), rows)), (target, output, k)


def test_baseline_game_values_equal_the_weighted_draw_path():
    """A baseline game (one draw of weight 1: the short path) gives bit for bit the values of
    the general path, a marginal removal over two copies of the baseline row (two draws of
    weight 1/2, averaged on the probability scale, then the behaviour)."""
    rng = np.random.default_rng(0)
    W = torch.as_tensor(rng.normal(size=(5, 2)))
    model = as_model(lambda x: torch.as_tensor(x) @ W, output_kind="logits")
    X = rng.normal(size=(7, 5))
    masks = rng.random((30, 5)) < 0.5
    for output in ("probability", "log-odds"):
        def game(removal, output=output):
            return Game(model, X, removal, Prediction(target=np.arange(7) % 2, output=output),
                        FeatureMap.tabular(5))
        fast = game(Baseline(np.zeros(5)))(masks)
        general = game(Marginal(np.zeros((2, 5))))
        assert general.K == 2
        torch.testing.assert_close(general(masks), fast, rtol=0, atol=0)


def test_inert_features_are_those_equal_to_every_replacement_bit_for_bit():
    rng = np.random.default_rng(0)
    X, fmap = zero_patch_images(rng)
    model = fingerprint_model(3 * 64)
    game = Game(model, X, Baseline(0.0), Prediction(target="all"), fmap)
    inert = game.inert_features(np.arange(len(X)))
    expect = np.zeros(16, dtype=bool)
    expect[[0, 1, 4, 5]] = True  # the four patches of the zero quadrant
    assert inert.shape == (len(X), 16) and (inert == expect).all()
    # two background rows: inert only where the explicand equals both
    bg = np.zeros((2, 3, 8, 8), dtype=np.float32)
    bg[1, :, :2, :2] = 1.0
    marg = Game(model, X, Marginal(bg), Prediction(target="all"), fmap)
    expect[0] = False
    assert (marg.inert_features(np.arange(len(X))) == expect).all()
    # replacements that depend on the coalition: no claim
    cond = Game(fingerprint_model(6), rng.standard_normal((4, 6)),
                ConditionalGaussian(rng.standard_normal((30, 6)), n_samples=3),
                Prediction(target="all"), FeatureMap.tabular(6))
    assert cond.inert_features(np.arange(4)) is None


def test_per_row_masks_evaluate_each_distinct_input_once(monkeypatch):
    """Pairs whose masks differ only in inert features build the same synthetic input: they
    are evaluated once, and every value equals the plain evaluation bit for bit."""
    rng = np.random.default_rng(1)
    X, fmap = zero_patch_images(rng)
    model = fingerprint_model(3 * 64)
    masks = rng.random((len(X), 40, 16)) < 0.5
    masks[:, 1::2] = masks[:, 0::2]
    masks[:, 1::2, [0, 1, 4, 5]] ^= True  # odd masks: the even ones with inert bits flipped
    game = Game(model, X, Baseline(0.0), Prediction(target="all"), fmap)
    fast = game(masks)
    plain = Game(model, X, Baseline(0.0), Prediction(target="all"), fmap)
    monkeypatch.setattr(Game, "inert_features", lambda self, rows: None)
    ref = plain(masks)
    assert torch.equal(fast, ref)
    assert game.rows_evaluated <= plain.rows_evaluated - len(X) * 20


@pytest.mark.parametrize("shape", [(1, 3), (257, 4, 2), (3000, 16, 3)])
def test_row_sum_equals_adding_rows_one_after_another(shape):
    values = torch.as_tensor(np.random.default_rng(0).normal(size=shape) * 1e3)
    total = values[0].clone()
    for row in values[1:]:  # the reference: the rows added in order
        total += row
    assert torch.equal(row_sum(values), total)
