"""Progress bars (xai.progress) and xai's warnings (xai._warn): a bar's total is the planned
model rows (exactly those evaluated for exact methods), a stopped sampler's bar completes to
the rows it evaluated, the rendered bar shows the total and the time left, warnings name the
caller's line and are printed above an open bar, and a model's read-only output raises no
torch warning."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import xai
import xai.explainer
from xai import progress as progress_module
from xai._warn import warn
from xai.progress import Progress

D = 4


def linear(z):
    """A linear model of ``D`` columns (numpy in, numpy out)."""
    return np.asarray(z, dtype=np.float64) @ np.arange(1.0, D + 1)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(3, D)), rng.normal(size=(10, D))


@pytest.fixture
def bars(monkeypatch):
    """The explainer's progress bars, recorded with their planned totals and final counts."""
    made = []

    class Recorded(Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.planned = 0
            self.final = None
            made.append(self)

        def plan(self, count, **kwargs):
            self.planned += count
            super().plan(count, **kwargs)

        def close(self, complete=True):
            self.final = self.n
            super().close(complete)

    monkeypatch.setattr(xai.explainer, "Progress", Recorded)
    return made


def rendered(fn):
    """What ``fn`` writes to stderr (where the bars go)."""
    out = io.StringIO()
    with contextlib.redirect_stderr(out):
        result = fn()
    return result, out.getvalue()


@pytest.mark.parametrize("method, options", [
    ("exact-shap", {}),
    ("kernelshap", {"budget": 10_000}),  # a budget that covers every coalition: enumerated
])
def test_exact_bar_total_is_the_model_rows_evaluated(data, bars, method, options):
    X, background = data
    expl, text = rendered(lambda: xai.explain(linear, X, method=method, background=background,
                                              progress=True, **options))
    (bar,) = bars
    # v(D) one row per explicand, the shared v(∅) once over the background, the 2^d - 2
    # other coalitions over the background for every explicand
    assert bar.planned == 3 + 10 + (2**D - 2) * 3 * 10 == expl.evaluations
    assert bar.final == expl.evaluations
    assert f"0/{expl.evaluations} model rows" in text  # the total, before any model call


def test_stopped_sampler_bar_completes_to_the_rows_evaluated(bars):
    rng = np.random.default_rng(1)
    X, background = rng.normal(size=(2, 12)), rng.normal(size=(8, 12))
    w = np.linspace(-1, 1, 12)
    expl, text = rendered(lambda: xai.explain(
        lambda z: np.asarray(z) @ w, X, method="permutation-shap", background=background,
        budget=200_000, tol=0.05, seed=0, progress=True))
    (bar,) = bars
    assert bool(expl.converged.all())
    assert expl.evaluations < bar.planned  # the tolerance stopped it before the budget
    assert bar.final == expl.evaluations
    last = [part for part in text.split("\r") if "%|" in part][-1]
    assert last.startswith("xai permutation-shap: 100%")
    assert "explained 2/2 rows" in last


def test_bar_shows_total_rate_and_time_left():
    out = io.StringIO()
    with Progress("xai test", total=400, file=out, enabled=True, explained=4) as bar:
        for _ in range(4):
            bar.update(100)
        bar.explained(4)
    frames = [f for f in out.getvalue().split("\r") if f.strip()]
    assert frames[0].startswith("xai test:   0%|")
    assert "/400 model rows [00:00<?" in frames[0]  # total known, time left not yet
    assert re.search(r"100%\|#+\| 400/400 model rows \[\d\d:\d\d<00:00, \S+ model rows/s, "
                     r"explained 4/4 rows\]", out.getvalue())


def test_large_counts_are_scaled_and_small_ones_exact():
    assert progress_module.count_text(9_999) == "9999"
    assert progress_module.count_text(1_046_505) == "1.05M"
    assert progress_module.rate_text(106_389.2) == "106k"
    assert progress_module.rate_text(0.5) == "0.5"


def test_bar_total_grows_when_the_count_overtakes_the_plan():
    with Progress("xai test", total=10, file=io.StringIO(), enabled=True) as bar:
        bar.update(25)
        assert bar.total == 25 and bar.n == 25


def test_hidden_bar_writes_nothing(data, capsys):
    X, background = data
    xai.explain(linear, X, method="exact-shap", background=background, progress=False)
    assert capsys.readouterr().err == ""
    assert not Progress("xai test", enabled="auto").shown  # stderr is not a terminal here


def test_xai_warning_names_the_callers_line():
    rng = np.random.default_rng(2)
    X, background = rng.normal(size=(2, D)), rng.normal(size=(40, D))
    line = sys._getframe().f_lineno + 2
    with pytest.warns(UserWarning, match="background has 40 rows") as record:
        xai.explain(linear, X, method="kernelshap", background=background, max_background=20,
                    progress=False)
    (w,) = [w for w in record if "background has" in str(w.message)]
    assert w.filename == __file__
    assert w.lineno == line


def test_warn_helper_points_out_of_the_package():
    with pytest.warns(RuntimeWarning, match="from xai") as record:
        warn("from xai", RuntimeWarning)
    assert record[0].filename == __file__


def test_warnings_are_written_above_an_open_bar(monkeypatch):
    def default_printer(message, category, filename, lineno, file=None, line=None):
        (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno,
                                                          line))

    monkeypatch.setattr(warnings, "showwarning", default_printer)
    writes = []
    from tqdm.auto import tqdm as tqdm_class  # the class the bars are made of

    original = tqdm_class.write.__func__

    def spy(cls, s, file=None, end="\n", nolock=False):
        writes.append(s)
        return original(cls, s, file=file, end=end, nolock=nolock)

    monkeypatch.setattr(tqdm_class, "write", classmethod(spy))
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with Progress("xai test", total=10, file=out, enabled=True):
            warnings.warn("careful", UserWarning, stacklevel=1)
        assert warnings.showwarning is default_printer  # restored when the bar closes
    assert len(writes) == 1 and "UserWarning: careful" in writes[0]
    assert "UserWarning: careful" in out.getvalue()


def test_recorded_warnings_stay_recorded_under_a_bar():
    with pytest.warns(UserWarning, match="kept") as record, \
            Progress("xai test", total=10, file=io.StringIO(), enabled=True):
        warnings.warn("kept", UserWarning, stacklevel=1)
    assert len(record) == 1


def test_read_only_inputs_and_model_output_raise_no_torch_warning():
    # torch warns about a non-writable array once per process: a fresh one tells the truth
    code = textwrap.dedent("""
        import warnings
        import numpy as np
        import xai

        def model(z):
            out = np.asarray(z, dtype=np.float64).sum(1)
            out.flags.writeable = False
            return out

        rng = np.random.default_rng(0)
        X, background = rng.normal(size=(2, 4)), rng.normal(size=(5, 4))
        X.flags.writeable = background.flags.writeable = False
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            xai.explain(model, X, method="kernelshap", background=background,
                        progress=False)
        print([str(w.message) for w in record if "not writable" in str(w.message)])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_auto_shows_on_a_terminal_only(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert progress_module.shown("auto")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not progress_module.shown("auto")
    assert progress_module.shown(True) and not progress_module.shown(False)


def test_craft_shows_its_crops_and_model_rows():
    from collections import OrderedDict

    import torch
    from torch import nn

    from xai.concepts import CRAFT

    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU()), pool=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(), fc=nn.Linear(4, 2)))
    images = torch.rand(4, 3, 16, 16)
    craft = CRAFT(model, "features", n_concepts=2, progress=True)
    result, text = rendered(lambda: craft.fit(images))
    crops = len(craft.crop_boxes_)
    assert "xai craft crops: 100%" in text and f"{crops}/{crops} crops" in text
    evaluations = result.evaluations
    assert f"{evaluations}/{evaluations} model rows" in text
    assert "explained 4/4 rows" in text


def test_metric_bar_ends_at_the_metrics_model_rows(data):
    X, background = data
    expl = xai.explain(linear, X, method="exact-shap", background=background, progress=False)
    metric = xai.registry.get("metric", "deletion")()
    result, text = rendered(lambda: metric(linear, X, expl, output="raw", progress=True))
    assert result.evaluations > 0
    frames = [f for f in text.split("\r") if f.strip()]
    assert frames[0].startswith("xai deletion: 0 model rows")  # no total: counted as it goes
    assert f"100%|##########| {result.evaluations}/{result.evaluations} model rows" in text
    assert "explained 3/3 rows" in frames[-1]
