"""The plugin registry: in-process registration, entry points, isolation of broken plugins
(SystemExit included), plugins that try to take core names, name conflicts, and the worked
third-party plugin in examples/ installed with pip."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import xai
from xai import plugins, registry
from xai.cli import main
from xai.summaries import Summary, SummaryResult

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "xai-example-plugin"


class MeanOfSingletons(Summary):
    """A toy summary: v({i}) - v(∅), written by a 'user'."""

    name = "user-singletons"

    def __call__(self, game, rows=None):
        rows = np.arange(game.n) if rows is None else np.asarray(rows)
        empty = game.v_empty(rows).numpy()
        vals = game(np.eye(game.d, dtype=bool), rows).numpy() - empty[:, None]
        n = len(rows)
        return SummaryResult(vals, np.zeros_like(vals), empty, np.ones(n, int),
                             np.ones(n, bool), np.full(n, game.d + 1))


@pytest.fixture
def clean_names():
    added = []
    yield added
    for kind, name in added:
        registry.unregister(kind, name)


def test_register_in_process_and_use_by_name(clean_names):
    xai.register("summary", "user-singletons", MeanOfSingletons)
    clean_names.append(("summary", "user-singletons"))
    w = np.array([1.0, -2.0, 3.0])
    X, B = np.ones((2, 3)), np.zeros((1, 3))
    e = xai.Explainer("marginal", "prediction", "user-singletons").explain(
        lambda A: A @ w, X, background=B)
    np.testing.assert_allclose(e.values, np.tile(w, (2, 1)))
    assert e.summary["name"] == "user-singletons"


def test_register_decorator_and_duplicate_in_process(clean_names):
    @xai.register("summary", "user-dup")
    class A(MeanOfSingletons):
        pass

    clean_names.append(("summary", "user-dup"))
    with pytest.raises(xai.XaiError, match="registered twice.*Rename one"):
        xai.register("summary", "user-dup", MeanOfSingletons)


def _plugin(name, **hooks):
    module = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(module, hook, xai.hookimpl(fn))
    return module


def test_duplicate_plugin_names_need_namespaces(clean_names):
    class S1(MeanOfSingletons):
        pass

    class S2(MeanOfSingletons):
        pass

    plugins.register_plugin(_plugin("p_one", xai_summaries=lambda: {"twin": S1}), "pone")
    plugins.register_plugin(_plugin("p_two", xai_summaries=lambda: {"twin": S2}), "ptwo")
    clean_names += [("summary", "twin"), ("summary", "pone.twin"), ("summary", "ptwo.twin")]
    with pytest.raises(xai.XaiError, match=r"'twin' is provided by several sources.*pone.*"
                                           r"ptwo.*'pone\.twin', 'ptwo\.twin'"):
        registry.get("summary", "twin")
    assert registry.get("summary", "pone.twin") is S1
    assert registry.get("summary", "ptwo.twin") is S2


def test_hook_returning_garbage_is_reported_and_the_rest_works(clean_names):
    class Good(MeanOfSingletons):
        pass

    with pytest.warns(UserWarning, match="returned list, not a dict"):
        rec = plugins.register_plugin(_plugin("p_bad", xai_removals=lambda: ["not", "a dict"],
                                              xai_summaries=lambda: {"good-one": Good}),
                                      "pbad")
    clean_names += [("summary", "good-one"), ("summary", "pbad.good-one")]
    assert "xai_removals returned list" in rec.error
    assert registry.get("summary", "good-one") is Good
    with pytest.warns(UserWarning, match="must be a subclass"):
        rec = plugins.register_plugin(_plugin("p_bad2", xai_summaries=lambda: {"x": 42}),
                                      "pbad2")
    assert "must be a subclass" in rec.error
    def boom():
        raise RuntimeError("boom")

    with pytest.warns(UserWarning, match="raised RuntimeError: boom"):
        plugins.register_plugin(_plugin("p_bad3", xai_summaries=boom), "pbad3")
    # everything else still works
    e = xai.explain(lambda A: A.sum(1), np.ones((1, 3)), method="exact-shap",
                    background=np.zeros((1, 3)), progress=False)
    np.testing.assert_allclose(e.values, 1.0)


def test_plugin_failing_to_import_is_reported_and_skipped(monkeypatch):
    real = importlib.metadata.entry_points
    broken = importlib.metadata.EntryPoint(name="broken", value="xai_no_such_module_x",
                                           group="xai")

    def fake(group=None, **kw):
        eps = list(real(group=group, **kw)) if group else []
        return eps + [broken] if group == "xai" else real(group=group, **kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    plugins._RECORDS.pop("broken", None)
    with pytest.warns(UserWarning, match="failed to import 'xai_no_such_module_x'"):
        plugins.load_plugins(refresh=True)
    rec = plugins._RECORDS["broken"]
    assert "ModuleNotFoundError" in rec.error
    assert "kernelshap" in xai.methods()  # the rest keeps working
    plugins._RECORDS.pop("broken")


def test_system_exit_in_a_hook_is_contained():
    def exits():
        raise SystemExit("bye")

    try:
        with pytest.warns(UserWarning, match="hook xai_summaries raised SystemExit: bye"):
            rec = plugins.register_plugin(_plugin("p_exit", xai_summaries=exits), "pexit")
        assert rec.components == {}
    finally:
        plugins.unload_plugins()


def test_keyboard_interrupt_in_a_plugin_reaches_the_user():
    def interrupted():
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            plugins.register_plugin(_plugin("p_int", xai_summaries=interrupted), "pint")
        assert "KeyboardInterrupt" in plugins._RECORDS["pint"].error  # not shown as ok
    finally:
        plugins.unload_plugins()


SHADOW_PLUGIN = """
import xai
from xai.removals import Marginal
from xai.summaries.kernelshap import KernelSHAP


class ShadowMarginal(Marginal):
    def fit(self, ctx):
        raise RuntimeError("the plugin's removal was used under a core name")


class ShadowKernelSHAP(KernelSHAP):
    def __call__(self, game, rows=None):
        raise RuntimeError("the plugin's summary was used under a core name")


@xai.hookimpl
def xai_removals():
    return {"marginal": ShadowMarginal, "shadow-extra": ShadowMarginal}


@xai.hookimpl
def xai_summaries():
    return {"kernelshap": ShadowKernelSHAP}
"""


def _fake_distribution(root: Path, dist: str, entry: str, module: str, source: str) -> None:
    """An installed distribution as importlib.metadata sees it: a module and a dist-info
    directory whose entry point in group ``xai`` names the module."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"  # "-" only before the version
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[xai]\n{entry} = {module}\n")


@pytest.fixture
def hostile_plugins(tmp_path):
    """Two installed plugins: ``shadow`` registers the core names ``marginal`` and
    ``kernelshap`` (and one name of its own), ``exits`` raises SystemExit at import."""
    _fake_distribution(tmp_path, "xai-shadow", "shadow", "xai_test_shadow", SHADOW_PLUGIN)
    _fake_distribution(tmp_path, "xai-exits", "exits", "xai_test_exits", "raise SystemExit(3)\n")
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    plugins.unload_plugins()
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("xai_test_shadow", None)
    importlib.invalidate_caches()
    plugins.unload_plugins()


def test_installed_plugin_cannot_shadow_core_names(hostile_plugins):
    with pytest.warns(UserWarning, match="'marginal' is a core name"):
        records = plugins.load_plugins()
    shadow = records["shadow"]
    assert sorted(shadow.refused) == [("removal", "marginal"), ("summary", "kernelshap")]
    assert registry.get("removal", "shadow-extra").__name__ == "ShadowMarginal"
    assert registry.get("removal", "shadow.marginal").__name__ == "ShadowMarginal"
    assert registry.get("removal", "marginal") is registry.get("removal", "xai.marginal")
    # the methods built on the refused names still use xai's own: exact on a linear model
    rng = np.random.default_rng(0)
    w, X, B = np.array([1.0, -2.0, 0.5]), rng.normal(size=(2, 3)), rng.normal(size=(20, 3))
    for method in ("shap", "kernelshap", "exact-shap", "occlusion"):
        e = xai.explain(lambda A: A @ w, X, method=method, background=B, seed=0,
                        progress=False)
        np.testing.assert_allclose(e.values, w * (X - B.mean(0)), atol=1e-8, err_msg=method)


def test_installed_plugin_exiting_at_import_is_contained(hostile_plugins):
    with pytest.warns(UserWarning, match="'exits'.*failed to import 'xai_test_exits': "
                                         "SystemExit: 3"):
        records = plugins.load_plugins()
    assert records["exits"].components == {} and "SystemExit" in records["exits"].error
    assert "kernelshap" in xai.methods() and "captum.saliency" in xai.methods()


def test_xai_plugins_shows_refused_names_and_failed_plugins(hostile_plugins):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(hostile_plugins), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "xai.cli", "plugins"], env=env, check=False,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    shadow = next(line for line in lines if line.startswith("  shadow "))
    assert "xai-shadow 1.0" in shadow and "FAILED" in shadow
    assert "removal 'marginal' is a core name" in shadow and "'shadow.marginal'" in shadow
    assert "summary 'kernelshap' is a core name" in shadow
    exits = next(line for line in lines if line.startswith("  exits "))
    assert "FAILED: failed to import 'xai_test_exits': SystemExit: 3" in exits
    assert "  removal 'marginal': xai-shadow 1.0 (plugin 'shadow')" in lines
    assert any(line.split() == ["marginal", "xai", "0.1.0", "(core)"] for line in lines)
    assert any(line.split()[:2] == ["shadow-extra", "xai-shadow"] for line in lines)


def test_xai_plugins_lists_builtins(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    for plugin in ("captum", "shap", "lime"):
        assert f"  {plugin} " in out
    assert "kernelshap" in out and "xai 0.1.0 (core)" in out
    assert "summaries:" in out and "explainers:" in out


def test_import_xai_does_not_import_backends():
    code = ("import sys, xai; xai.methods(); "
            "print(any(m in sys.modules for m in ('captum', 'shap', 'lime')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


@pytest.fixture(scope="module")
def example_installed():
    """The worked plugin, installed with pip as a user would (no build isolation: offline)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", str(EXAMPLE)], check=True)
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes",
                    "xai-example-plugin"], check=False)


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout


def test_example_plugin_listed_and_usable(example_installed):
    out = subprocess.run([sys.executable, "-m", "xai.cli", "plugins"], capture_output=True,
                         text=True, check=True).stdout
    assert "example" in out and "xai-example-plugin 0.1.0" in out
    assert "first-order" in out and "example.finite-difference" in out
    # the custom summary is exact on an additive game, the explainer is w * x on a linear one
    out = _run(
        "import numpy as np, xai\n"
        "w = np.array([1.0, -2.0, 0.5])\n"
        "X = np.array([[1.0, 2.0, 3.0]])\n"
        "e = xai.Explainer('baseline', 'prediction', 'first-order', baseline=0.0)"
        ".explain(lambda A: A @ w, X)\n"
        "f = xai.explain(lambda A: A @ w, X, method='example.finite-difference')\n"
        "print(np.abs(e.values - w * X).max(), np.abs(f.values - w * X).max())\n")
    a, b = map(float, out.split())
    assert a < 1e-12 and b < 1e-6
