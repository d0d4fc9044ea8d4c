"""The component registry: validated, atomic registration; core names that plugins cannot
shadow and that also answer to ``xai.<name>``; namespaces; lookups from several threads."""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading

import pytest

import xai
from xai import plugins, registry
from xai.removals import Marginal
from xai.summaries import Summary
from xai.summaries.kernelshap import KernelSHAP


class UserSummary(Summary):
    """A summary class for registration tests (never called)."""


class ShadowMarginal(Marginal):
    """A plugin's removal under a core name."""


@pytest.fixture
def fresh_plugins():
    """Plugins registered by a test are forgotten afterwards (the real ones load again)."""
    yield
    plugins.unload_plugins()


def _plugin(**hooks):
    """An in-process plugin object whose hooks return the given dicts."""
    class Plugin:
        pass

    for hook, components in hooks.items():
        setattr(Plugin, hook, staticmethod(xai.hookimpl(lambda c=components: c)))
    return Plugin()


# -- validation and atomicity ---------------------------------------------------------------

@pytest.mark.parametrize("kind, obj, message", [
    ("removal", 42, "must be a subclass of xai.removals.Removal"),
    ("removal", UserSummary, "must be a subclass of xai.removals.Removal"),
    ("summary", UserSummary(), "must be a subclass of xai.summaries.base.Summary"),
    ("metric", UserSummary, "must be a subclass of xai.metrics.base.Metric"),
    ("explainer", 3.5, "must be a Preset or a class with an explain"),
    ("explainer", "shap", "a lazy explainer is named 'package.module:attribute'"),
    ("suite", object(), "must be an xai.bench.Suite"),
])
def test_register_refuses_objects_of_the_wrong_type(kind, obj, message):
    with pytest.raises(xai.RegistrationError, match=message):
        xai.register(kind, "wrong-type", obj)
    assert "wrong-type" not in registry.names(kind)


@pytest.mark.parametrize("name, aliases, message", [
    ("", (), "non-empty strings, got ''"),
    ("   ", (), "non-empty strings"),
    (None, (), "non-empty strings, got None"),
    ("fine-name", ("",), "non-empty strings, got ''"),
    ("fine-name", (3,), "non-empty strings, got 3"),
    ("fine-name", "one-alias", r"aliases must be a tuple.*aliases=\('one-alias',\)"),
    ("xai.mine", (), "reserved"),
    ("fine-name", ("XAI.Mine",), "reserved"),
])
def test_register_refuses_bad_names_and_registers_nothing(name, aliases, message):
    with pytest.raises(xai.RegistrationError, match=message):
        xai.register("summary", name, UserSummary, aliases=aliases)
    assert "fine-name" not in registry.names("summary")


def test_decorator_refuses_a_bad_name_before_the_class():
    with pytest.raises(xai.RegistrationError, match="non-empty strings"):
        xai.register("summary", "")


def test_registration_with_a_taken_alias_registers_nothing():
    with pytest.raises(xai.RegistrationError, match="'kernelshap' is registered twice"):
        xai.register("summary", "brand-new", UserSummary, aliases=("kernelshap",))
    assert "brand-new" not in registry.names("summary")
    assert registry.get("summary", "kernelshap") is KernelSHAP


def test_registration_errors_are_value_errors():
    with pytest.raises(ValueError):
        xai.register("summary", "", UserSummary)


def test_reregistering_the_same_object_is_harmless():
    xai.register("summary", "kernelshap", KernelSHAP)
    assert registry.get("summary", "kernelshap") is KernelSHAP
    assert registry.source("summary", "kernelshap") is registry.CORE


def test_a_kind_takes_what_its_own_module_declared(monkeypatch):
    # the registry imports no component module: until the module that defines a kind's base
    # type declares it, nothing is a component of that kind
    monkeypatch.setitem(registry._ACCEPTS, "summary", [])
    with pytest.raises(xai.RegistrationError,
                       match="must be a subclass of xai.summaries.base.Summary"):
        xai.register("summary", "declared-later", UserSummary)
    registry.define_kind("summary", Summary)
    try:
        assert xai.register("summary", "declared-later", UserSummary) is UserSummary
    finally:
        registry.unregister("summary", "declared-later")


@pytest.mark.parametrize("base, accepts", [(None, None), (Summary, callable)])
def test_define_kind_takes_a_base_or_a_test(base, accepts):
    with pytest.raises(xai.RegistrationError, match="a base class or an accepts function"):
        registry.define_kind("summary", base, accepts=accepts)


def test_lookups_run_the_installed_loaders_first(monkeypatch):
    monkeypatch.setattr(registry, "_LOADERS", [])
    calls = []

    def loader():
        calls.append(1)

    registry.add_loader(loader)
    registry.add_loader(loader)  # installed once
    assert "marginal" in registry.names("removal")
    assert registry.get("removal", "marginal") is Marginal
    assert len(calls) == 2


def test_plugin_discovery_is_an_installed_loader():
    assert registry._LOADERS and all(callable(f) for f, _ in registry._LOADERS)
    plugins.unload_plugins()
    assert "captum.saliency" in registry.names("explainer")  # a lookup loaded them again


# -- core names -----------------------------------------------------------------------------

def test_core_components_answer_to_their_namespaced_name():
    assert registry.get("removal", "xai.marginal") is Marginal
    assert registry.get("removal", "XAI.Interventional") is Marginal
    assert registry.get("explainer", "xai.shap") is registry.get("explainer", "shap")
    assert registry.source("summary", "xai.kernelshap") is registry.CORE
    assert not [n for n in registry.names("removal") if n.startswith("xai.")]


def test_core_namespace_holds_only_core_components():
    with pytest.raises(xai.UnknownNameError, match="unknown core removal 'xai.nope'"):
        registry.get("removal", "xai.nope")
    with pytest.raises(xai.UnknownNameError, match="core explainer"):
        registry.get("explainer", "xai.captum.saliency")
    assert registry.get("explainer", "captum.saliency") is not None


def test_a_plugin_cannot_shadow_a_core_name(fresh_plugins):
    with pytest.warns(UserWarning, match="'marginal' is a core name"):
        rec = plugins.register_plugin(
            _plugin(xai_removals={"marginal": ShadowMarginal, "shadow-only": ShadowMarginal}),
            "shadow")
    assert registry.get("removal", "marginal") is Marginal
    assert registry.source("removal", "marginal") is registry.CORE
    assert registry.get("removal", "shadow.marginal") is ShadowMarginal
    assert registry.get("removal", "shadow-only") is ShadowMarginal  # the rest still loads
    assert rec.refused == [("removal", "marginal")]
    assert rec.components == {"removal": ["shadow.marginal", "shadow-only"]}
    assert "stays available as 'shadow.marginal'" in rec.error
    assert ("removal", "marginal") not in registry.conflicts()
    assert registry.refused()[("removal", "marginal")] == [rec.source]


def test_strict_registration_from_another_source_cannot_take_a_core_name():
    with pytest.raises(xai.RegistrationError, match="'marginal' is a core name.*'mine.marginal'"):
        xai.register("removal", "marginal", ShadowMarginal, source="mine")
    assert registry.get("removal", "marginal") is Marginal


def test_a_core_registration_takes_a_name_a_plugin_registered_first(fresh_plugins):
    class Early(UserSummary):
        pass

    class Second(UserSummary):
        pass

    class Late(UserSummary):
        pass

    plugins.register_plugin(_plugin(xai_summaries={"contested": Early}), "early")
    plugins.register_plugin(_plugin(xai_summaries={"contested": Second}), "second")
    try:
        assert ("summary", "contested") in registry.conflicts()
        xai.register("summary", "contested", Late)
        assert registry.get("summary", "contested") is Late  # no longer ambiguous
        assert registry.get("summary", "early.contested") is Early
        with pytest.warns(UserWarning, match="'contested' is a core name"):
            records = {r.name: r for r in plugins.plugin_records()}
        for name in ("early", "second"):
            assert records[name].refused == [("summary", "contested")]
            assert "'contested' is a core name" in records[name].error
    finally:
        registry.unregister("summary", "contested")


def test_the_plugin_name_xai_is_reserved(fresh_plugins):
    with pytest.warns(UserWarning, match="reserved"):
        rec = plugins.register_plugin(_plugin(xai_summaries={"mine": UserSummary}), "xai")
    assert "rename the entry point" in rec.error
    assert "mine" not in registry.names("summary")


# -- plugin namespaces ----------------------------------------------------------------------

def test_a_plugin_cannot_register_in_another_plugins_namespace(fresh_plugins):
    class Own(UserSummary):
        pass

    class Squatter(UserSummary):
        pass

    plugins.register_plugin(_plugin(xai_summaries={"twin": Own}), "owner")
    with pytest.warns(UserWarning, match="may only use its own namespace"):
        rec = plugins.register_plugin(
            _plugin(xai_summaries={"owner.twin": Squatter, "squatter.fine": Squatter}),
            "squatter")
    assert registry.get("summary", "owner.twin") is Own
    assert registry.get("summary", "squatter.fine") is Squatter
    assert rec.components == {"summary": ["squatter.fine"]}


def test_unloading_forgets_plugin_components_and_the_next_lookup_reloads():
    plugins.unload_plugins()
    assert not plugins._RECORDS
    assert "captum.saliency" not in registry._REGISTRY["explainer"]
    assert "captum.saliency" in registry.names("explainer")
    assert registry.get("removal", "marginal") is Marginal


# -- threads --------------------------------------------------------------------------------

def _in_threads(work, n=8):
    """Run ``work()`` in ``n`` threads released together; (results, exceptions)."""
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run():
        barrier.wait()
        try:
            results.append(work())
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


@pytest.mark.parametrize("repeat", range(5))
def test_concurrent_first_lookups_wait_for_plugins_to_load(repeat):
    plugins.unload_plugins()
    results, errors = _in_threads(lambda: registry.get("explainer", "captum.saliency"))
    assert errors == []
    assert len(results) == 8 and len({id(r) for r in results}) == 1


def test_concurrent_registrations_of_one_name_admit_exactly_one():
    classes = [type(f"Racer{i}", (UserSummary,), {}) for i in range(8)]
    pending = list(classes)
    lock = threading.Lock()

    def register_one():
        with lock:
            cls = pending.pop()
        return xai.register("summary", "raced-name", cls, aliases=(f"raced-{cls.__name__}",))

    try:
        results, errors = _in_threads(register_one)
        assert len(results) == 1 and len(errors) == 7
        assert all(isinstance(e, xai.RegistrationError) for e in errors)
        assert registry.get("summary", "raced-name") is results[0]
        # the losers left no alias behind
        assert [n for n in registry.names("summary") if n.startswith("raced-")] == \
            sorted(["raced-name", f"raced-{results[0].__name__.lower()}"])
    finally:
        for name in ["raced-name", *(f"raced-{cls.__name__}" for cls in classes)]:
            registry.unregister("summary", name)


# -- lazy registration ----------------------------------------------------------------------

def test_lazy_component_is_imported_on_first_lookup(tmp_path, monkeypatch):
    (tmp_path / "lazy_user_summary.py").write_text(
        "from xai.summaries.base import Summary\n"
        "class Late(Summary):\n    '''A summary imported late. More text.'''\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("summary", "late-summary", "lazy_user_summary:Late", source="user-pkg")
    try:
        assert "late-summary" in registry.names("summary")
        assert "lazy_user_summary" not in sys.modules  # listing imports nothing
        assert registry.description("summary", "late-summary") == "A summary imported late."
        late = registry.get("summary", "late-summary")
        assert late.__name__ == "Late" and "lazy_user_summary" in sys.modules
        assert registry.peek("summary", "late-summary") is late  # resolved once, kept
    finally:
        registry.unregister("summary", "late-summary")


@pytest.mark.parametrize("module_text, target, message", [
    ("", "no_such_module_xyz:Thing", "cannot be imported: ModuleNotFoundError"),
    ("class Thing: pass\n", "lazy_wrong_kind:Thing", "must be a subclass of xai.removals"),
    ("", "lazy_wrong_kind:Missing", "cannot be imported: AttributeError"),
])
def test_lazy_component_that_cannot_be_used_is_a_named_error_at_lookup(
        tmp_path, monkeypatch, module_text, target, message):
    (tmp_path / "lazy_wrong_kind.py").write_text(module_text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_wrong_kind", raising=False)
    registry.register("removal", "late-removal", registry.Lazy(target), source="user-pkg")
    try:
        with pytest.raises(xai.RegistrationError, match=message) as info:
            registry.get("removal", "late-removal")
        assert "user-pkg" in str(info.value) and target in str(info.value)
    finally:
        registry.unregister("removal", "late-removal")


def test_listing_methods_imports_no_explainer_module():
    code = ("import sys, xai; names = xai.methods(); "
            "from xai import registry; [registry.description('explainer', n) for n in names]; "
            "heavy = [m for m in ('torch', 'xai.explainer', 'xai_shap._explainers', "
            "'xai_captum._explainers', 'xai_lime._explainers', 'shap', 'captum') "
            "if m in sys.modules]; "
            "assert 'captum.saliency' in names and 'pattern' in names, names; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_xai_imports_no_torch_and_names_load_on_first_use():
    code = ("import sys, xai; assert 'torch' not in sys.modules; "
            "assert callable(xai.explain) and xai.Explanation.__name__ == 'Explanation'; "
            "assert 'torch' in sys.modules; "
            "assert 'deletion' in xai.registry.names('metric'); "
            "assert xai.metrics.get('deletion').name == 'deletion'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("plugin", ["xai_shap", "xai_lime", "xai_captum"])
def test_backend_descriptions_are_their_explainers_first_sentence(plugin):
    module = importlib.import_module(plugin)
    for name, lazy in module.xai_explainers().items():
        assert lazy.description == registry.first_sentence(lazy.resolve().__doc__), name
