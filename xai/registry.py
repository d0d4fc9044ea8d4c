"""Name-keyed registries of components: removals, behaviours, summaries, explainers, metrics,
data sets and benchmark suites.

Each kind is a plain dict filled by :func:`register` (in-process, also as a decorator) or by
plugins found through pluggy and the entry-point group ``xai`` (:mod:`xai.plugins`). Names are
case-insensitive and ``_`` and ``-`` are equivalent.

Who owns a name:

- Core components (xai's own, and whatever in-process code registers with :func:`register`)
  own their names. A plugin cannot shadow them: its component under that plain name is refused
  (:func:`refused`, shown FAILED by ``xai plugins``) and stays reachable only under its
  namespaced name. A core registration that meets a plugin's name takes it over, whichever
  came first, so the outcome does not depend on when plugins happen to load. Every core
  component also answers to ``xai.<name>``; names starting with ``xai.`` are reserved.
- Every plugin component is registered under its name *and* under its namespaced name
  ``<plugin>.<name>``. When two plugins register the same plain name, neither import fails;
  looking the plain name up raises an error naming both sources and their namespaced names,
  which always work.

A component may be registered lazily, as a :class:`Lazy` reference (or a plain
``"package.module:attribute"`` string): its module is imported on the first lookup of that
name, so listing names (``xai methods``) imports no component. xai declares its own whole
explainers and backends this way, and plugins may too.

Registration is validated (the object's type for the kind, non-empty string names; a lazy
component's type when it is imported) and atomic: when the name or any alias cannot be registered, none is. The tables are guarded by
one lock, held only briefly and never while importing, so registrations and lookups from
several threads are safe.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import RegistrationError, XaiError, unknown_name

KINDS = ("removal", "behaviour", "summary", "explainer", "metric", "dataset", "suite")
CORE_PREFIX = "xai."  # every core component also answers to "xai.<name>"


@dataclass(frozen=True)
class Source:
    """Where a component came from: the plugin (entry point) name, distribution and version."""

    plugin: str
    package: str
    version: str

    def __str__(self) -> str:
        return f"{self.package} {self.version} (plugin {self.plugin!r})"


CORE = Source("xai", "xai", "")


@dataclass(frozen=True)
class Lazy:
    """A component imported on its first lookup: ``target`` is ``"package.module:attribute"``
    (the attribute may be dotted); ``description`` is what listings show without importing
    it (by convention the first line of the component's docstring)."""

    target: str
    description: str = ""

    def resolve(self) -> Any:
        """Import the module and return the attribute."""
        module, _, attr = self.target.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

_REGISTRY: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
_SOURCES: dict[tuple[str, str], Source] = {}
_CONFLICTS: dict[tuple[str, str], list[Source]] = {}  # plain names two plugins registered
_REFUSED: dict[tuple[str, str], list[Source]] = {}  # core names plugins tried to take
_LOCK = threading.RLock()  # guards the four tables above


def normalize(name: str) -> str:
    """Canonical form of a component name: lower case, ``_`` replaced by ``-``."""
    return str(name).strip().lower().replace("_", "-")


def is_core(source: Source) -> bool:
    """Whether ``source`` is xai itself (in-process registration)."""
    return source == CORE


def _check_kind(kind: str) -> None:
    if kind not in _REGISTRY:
        raise unknown_name("component kind", kind, KINDS)


# -- validation ------------------------------------------------------------------------------
# The registry imports no component module (those modules import the registry to register
# themselves). The module that defines a kind's base type declares it with define_kind().

#: what a component of each kind must be (for the message when it is not)
_EXPECTED = {"removal": "a subclass of xai.removals.Removal",
             "behaviour": "a subclass of xai.behaviours.Behaviour",
             "summary": "a subclass of xai.summaries.base.Summary",
             "metric": "a subclass of xai.metrics.base.Metric",
             "dataset": "a subclass of xai.datasets.base.Dataset",
             "explainer": "a Preset or a class with an explain() method (e.g. a subclass of "
                          "xai.ExternalExplainer)",
             "suite": "an xai.bench.Suite"}


def _has_explain(obj: Any) -> bool:
    """A whole explainer: a class (or factory) whose instances have ``explain()``."""
    return callable(obj) and hasattr(obj, "explain")


#: tests a component of each kind must pass one of (the kind's own module adds them)
_ACCEPTS: dict[str, list[Callable[[Any], bool]]] = {kind: [] for kind in KINDS}
_ACCEPTS["explainer"].append(_has_explain)


def define_kind(kind: str, base: type | None = None, *,
                accepts: Callable[[Any], bool] | None = None) -> None:
    """Declare what a component of ``kind`` may be: a subclass of ``base``, or an object
    ``accepts(obj)`` is true for. Called by the module that defines the kind's base type,
    before it registers any component, so the registry never imports the modules that
    register into it. Until then no object can be a component of ``kind`` (they all subclass
    or instantiate a type of that module), except explainer classes with ``explain()``."""
    _check_kind(kind)
    if (base is None) == (accepts is None):
        raise RegistrationError("define_kind() takes a base class or an accepts function, "
                                f"not both or neither; got base={base!r}, accepts={accepts!r}")
    _ACCEPTS[kind].append(accepts or _subclass_of(base))


def _subclass_of(base: type) -> Callable[[Any], bool]:
    """The test of a kind whose components are subclasses of ``base``."""
    return lambda obj: isinstance(obj, type) and issubclass(obj, base)


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot name a component (None when it can)."""
    if not isinstance(name, str) or not name.strip():
        return f"component names must be non-empty strings, got {name!r}"
    if normalize(name).startswith(CORE_PREFIX):
        return (f"names starting with {CORE_PREFIX!r} are reserved (every core component "
                f"answers to '{CORE_PREFIX}<name>'), got {name!r}; drop the prefix")
    return None


def check_component(kind: str, name: Any, obj: Any) -> str | None:
    """Why ``obj`` cannot be component ``name`` of ``kind`` (None when it can); a
    :class:`Lazy` reference is checked for its form here and for its type when imported."""
    problem = name_problem(name)
    if problem:
        return problem
    if isinstance(obj, Lazy):
        if not isinstance(obj.target, str) or not _TARGET.match(obj.target):
            return (f"a lazy {kind} is named 'package.module:attribute', got {obj.target!r}")
        return None
    if not any(accepts(obj) for accepts in _ACCEPTS[kind]):
        return f"{kind} {name!r} must be {_EXPECTED[kind]}, got {obj!r}"
    return None


def constructor_options(cls: type) -> frozenset[str]:
    """Keyword options a component class's constructor accepts (no ``self``, ``*args``,
    ``**kwargs``): what an explainer may pass it, and what an explanation records of it."""
    return _init_params(cls.__init__)


@functools.lru_cache(maxsize=512)
def _init_params(init: Callable[..., Any]) -> frozenset[str]:
    sig = inspect.signature(init).parameters.values()  # once per constructor
    return frozenset(p.name for p in sig if p.name != "self" and p.kind not in
                     (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD))


def _checked_keys(name: Any, aliases: Any) -> list[str]:
    """The normalised, de-duplicated keys of ``name`` and ``aliases``; RegistrationError when
    one is not a usable name."""
    if isinstance(aliases, str) or not isinstance(aliases, Iterable):
        raise RegistrationError(f"aliases must be a tuple of names, got {aliases!r}; write "
                                f"aliases=({aliases!r},) for one alias")
    keys: list[str] = []
    for each in (name, *aliases):
        problem = name_problem(each)
        if problem:
            raise RegistrationError(f"cannot register {name!r}: {problem}.")
        if normalize(each) not in keys:
            keys.append(normalize(each))
    return keys


def _as_source(source: Source | str | None) -> Source:
    if source is None:
        return CORE
    if isinstance(source, str):
        source = Source(source, source, "")
    return CORE if is_core(source) else source


# -- registration ----------------------------------------------------------------------------

def register(kind: str, name: str, obj: Any = None, *, source: Source | str | None = None,
             aliases: tuple[str, ...] = (), strict: bool = True) -> Callable[[Any], Any] | Any:
    """Register ``obj`` as component ``name`` of ``kind``; usable as a decorator::

        @xai.register("summary", "my-summary")
        class MySummary(xai.summaries.Summary): ...

    ``obj`` must fit the kind (a subclass of its base class, a Preset or explainer class, a
    Suite), or be a :class:`Lazy` reference or ``"package.module:attribute"`` string to such an
    object (imported on first lookup); names and aliases must be non-empty strings; otherwise a ``RegistrationError``
    says why and nothing is registered. A different object under a name another source holds
    raises a ``RegistrationError`` naming both (``strict=True``), or is recorded and reported
    at lookup (``strict=False``, used for plugins). In-process registration (``source=None``)
    is core: it owns its names (see the module docstring).
    """
    _check_kind(kind)
    source = _as_source(source)
    keys = _checked_keys(name, aliases)  # fails at the decorator line, before the class

    def add(target: Any) -> Any:
        if isinstance(target, str):
            target = Lazy(target)
        problem = check_component(kind, name, target)
        if problem:
            raise RegistrationError(f"cannot register {kind} {name!r}: {problem}. Register a "
                                    f"component of the right type for {kind!r}.")
        with _LOCK:
            # decide every key before changing any, so a refused alias leaves nothing behind
            actions = [_decide(kind, key, target, source, strict) for key in keys]
            for key, action in zip(keys, actions):
                _apply(kind, key, target, source, action)
        return target

    return add if obj is None else add(obj)


def _decide(kind: str, key: str, target: Any, source: Source, strict: bool) -> str:
    """What registering ``target`` under ``key`` does: ``add``, ``same``, ``take`` (core takes
    a plugin's name), ``refuse`` (a plugin meets a core name) or ``conflict`` (two plugins);
    raises RegistrationError where a strict registration cannot proceed."""
    if key not in _REGISTRY[kind]:
        return "add"
    holder = _SOURCES[(kind, key)]
    if _REGISTRY[kind][key] is target:
        return "take" if is_core(source) and not is_core(holder) else "same"
    if is_core(source):
        if is_core(holder):
            raise RegistrationError(
                f"{kind} {key!r} is registered twice: by {holder} and by {source}. Rename "
                "one of them (e.g. prefix it with its package name), or unregister the first.")
        return "take"
    if is_core(holder):
        if strict:
            raise RegistrationError(
                f"{kind} {key!r} is a core name and cannot be replaced by {source}. Register "
                f"the component under another name (e.g. '{source.plugin}.{key}').")
        return "refuse"
    if strict:
        raise RegistrationError(
            f"{kind} {key!r} is registered twice: by {holder} and by {source}. Rename one of "
            "them (e.g. prefix it with its package name).")
    return "conflict"


def _apply(kind: str, key: str, target: Any, source: Source, action: str) -> None:
    """Carry out one decision of :func:`_decide` (the lock is held)."""
    where = (kind, key)
    if action == "refuse":
        _note(_REFUSED, where, source)
    elif action == "conflict":
        _CONFLICTS.setdefault(where, [_SOURCES[where]])
        _note(_CONFLICTS, where, source)
    elif action in ("add", "take"):
        if action == "take":  # every plugin that held or shared the name loses it
            for loser in _CONFLICTS.pop(where, [_SOURCES[where]]):
                _note(_REFUSED, where, loser)
        _REGISTRY[kind][key] = target
        _SOURCES[where] = source


def _note(table: dict[tuple[str, str], list[Source]], where: tuple[str, str],
          source: Source) -> None:
    sources = table.setdefault(where, [])
    if source not in sources:
        sources.append(source)


def unregister(kind: str, name: str) -> None:
    """Remove component ``name`` of ``kind`` (for tests and interactive sessions)."""
    _check_kind(kind)
    where = (kind, normalize(name))
    with _LOCK:
        _REGISTRY[kind].pop(where[1], None)
        _SOURCES.pop(where, None)
        _CONFLICTS.pop(where, None)
        _REFUSED.pop(where, None)


def unregister_source(source: Source) -> None:
    """Remove every component ``source`` (a plugin's, never the core) registered, and its
    conflicts and refusals."""
    if is_core(source):
        raise RegistrationError("unregister_source() removes a plugin's components; core "
                                "components are removed one by one with unregister()")
    with _LOCK:
        for where, holder in list(_SOURCES.items()):
            if holder == source:
                unregister(*where)
        for table in (_CONFLICTS, _REFUSED):
            for where, sources in list(table.items()):
                kept = [s for s in sources if s != source]
                if len(kept) > (1 if table is _CONFLICTS else 0):
                    table[where] = kept
                else:
                    del table[where]


# -- lookup ----------------------------------------------------------------------------------

_LOADERS: list[tuple[Callable[[], Any], tuple[str, ...]]] = []


def add_loader(loader: Callable[[], Any], kinds: Iterable[str] | None = None) -> None:
    """Call ``loader()`` before every lookup (:func:`get`, :func:`names`, :func:`source`) of
    the ``kinds`` given (every kind when None). xai imports its own component modules this
    way and :mod:`xai.plugins` installs its entry-point loader, so the registry never imports
    the modules that register into it. A loader must be cheap once it has run."""
    kinds = KINDS if kinds is None else tuple(kinds)
    for kind in kinds:
        _check_kind(kind)
    with _LOCK:
        for i, (known, had) in enumerate(_LOADERS):
            if known is loader:
                _LOADERS[i] = (loader, had + tuple(k for k in kinds if k not in had))
                return
        _LOADERS.append((loader, kinds))


def _load(kind: str) -> None:
    i = 0
    while i < len(_LOADERS):  # a loader may add one, which runs in the same lookup
        loader, kinds = _LOADERS[i]
        if kind in kinds:
            loader()
        i += 1


def _resolve(kind: str, key: str, lazy: Lazy) -> Any:
    """Import a lazily registered component and put it in place of every key that held the
    reference; RegistrationError naming the source when the import fails or the object does
    not fit the kind."""
    holder = _SOURCES.get((kind, key), CORE)
    try:
        obj = lazy.resolve()
    except Exception as exc:  # reported with the name and where it came from
        raise RegistrationError(
            f"{kind} {key!r} from {holder} is registered as {lazy.target!r}, which cannot be "
            f"imported: {type(exc).__name__}: {exc}. Install what it needs, or unregister it."
        ) from exc
    problem = check_component(kind, key, obj)
    if problem:
        raise RegistrationError(f"{kind} {key!r} from {holder}, imported from {lazy.target!r}: "
                                f"{problem}.")
    with _LOCK:
        table = _REGISTRY[kind]
        for name, value in list(table.items()):
            if value is lazy:
                table[name] = obj
    return obj


def _lookup_key(kind: str, name: str) -> str:
    """The key ``name`` is held under, after running the loaders of ``kind``; the plain key
    of a core name ``xai.<name>`` (UnknownNameError when the core has none)."""
    _check_kind(kind)
    _load(kind)
    key = normalize(name)
    if key.startswith(CORE_PREFIX):
        with _LOCK:
            key = _core_key(kind, name)
    return key


def get(kind: str, name: str) -> Any:
    """Look up a registered component (loading plugins first), raising ``UnknownNameError``
    with the known names, or an error naming the sources of an ambiguous plain name."""
    key = _lookup_key(kind, name)
    with _LOCK:
        if (kind, key) in _CONFLICTS:
            sources = _CONFLICTS[(kind, key)]
            alts = [f"{s.plugin}.{key}" for s in sources]
            raise XaiError(
                f"{kind} {key!r} is provided by several sources: "
                f"{'; '.join(str(s) for s in sources)}. Use a namespaced name "
                f"({', '.join(repr(a) for a in alts)}) or uninstall one of the plugins.")
        if key not in _REGISTRY[kind]:
            raise unknown_name(kind, name, _REGISTRY[kind])
        value = _REGISTRY[kind][key]
    return _resolve(kind, key, value) if isinstance(value, Lazy) else value


def peek(kind: str, name: str) -> Any:
    """The entry registered under ``name``, without importing it: a lazily registered
    component is returned as its :class:`Lazy` reference (None when nothing is registered)."""
    key = _lookup_key(kind, name)
    with _LOCK:
        return _REGISTRY[kind].get(key)


def description(kind: str, name: str) -> str:
    """One line saying what component ``name`` is: a :class:`Lazy` reference's own
    description (nothing imported), else the ``description`` attribute or the first line of
    the docstring."""
    value = peek(kind, name)
    if isinstance(value, Lazy) and value.description:
        return value.description
    obj = get(kind, name)
    text = getattr(obj, "description", None)
    if isinstance(text, str) and text:
        return text
    return first_sentence(getattr(obj, "__doc__", None) or "")


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    end = re.search(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)\.(\s+[A-Z`]|$)", paragraph)
    return paragraph[:end.start() + 1] if end else paragraph


def _core_key(kind: str, name: str) -> str:
    """The plain key of core name ``xai.<name>`` (lock held); UnknownNameError if none."""
    key = normalize(name)[len(CORE_PREFIX):]
    if key in _REGISTRY[kind] and is_core(_SOURCES[(kind, key)]):
        return key
    core = [CORE_PREFIX + k for k in _REGISTRY[kind] if is_core(_SOURCES[(kind, k)])]
    raise unknown_name(f"core {kind}", name, core)


def names(kind: str) -> list[str]:
    """Sorted registered names of ``kind`` (plain names; core ones also answer to
    ``xai.<name>``)."""
    _check_kind(kind)
    _load(kind)
    with _LOCK:
        return sorted(_REGISTRY[kind])


def source(kind: str, name: str) -> Source:
    """Where component ``name`` of ``kind`` came from (the first source of an ambiguous
    name)."""
    key = _lookup_key(kind, name)
    with _LOCK:
        if (kind, key) not in _SOURCES:
            raise unknown_name(kind, name, _REGISTRY[kind])
        return _SOURCES[(kind, key)]


def conflicts() -> dict[tuple[str, str], list[Source]]:
    """Plain names registered by more than one plugin, with those plugins."""
    with _LOCK:
        return {where: list(sources) for where, sources in _CONFLICTS.items()}


def refused() -> dict[tuple[str, str], list[Source]]:
    """Core names that plugins tried to register, with those plugins (their components stay
    reachable under ``<plugin>.<name>``)."""
    with _LOCK:
        return {where: list(sources) for where, sources in _REFUSED.items()}
