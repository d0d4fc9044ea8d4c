"""Sphinx directives that render xai's registries as tables when the docs are built, so the
pages list exactly the components that are registered:

- ``xai-components KIND``: the components of a kind (name, other names, what it is, class);
- ``xai-methods``: the named methods, each preset's removal x behaviour x summary;
- ``xai-help COMMAND...``: the ``--help`` text of an ``xai`` command.
"""

from __future__ import annotations

import contextlib
import io
import os

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList


def _cell(text: str) -> str:
    return " ".join(str(text).split()) or " "


def _list_table(header: list[str], rows: list[list[str]], widths: str) -> list[str]:
    """A MyST ``list-table`` (the pages are Markdown, so nested content is parsed as MyST)."""
    lines = ["```{list-table}", ":header-rows: 1", f":widths: {widths}", ""]
    for row in [header, *rows]:
        lines.append(f"* - {_cell(row[0])}")
        lines.extend(f"  - {_cell(value)}" for value in row[1:])
    return [*lines, "```"]


def component_rows(kind: str) -> list[list[str]]:
    """One row per registered component of ``kind``: its first name, its other names, its
    one-line description and the class (or object) that implements it."""
    from xai import registry
    from xai.bench import load_components

    load_components()  # every metric, data set and benchmark suite registered

    groups: dict[int, list[str]] = {}
    objects: dict[int, object] = {}
    for name in registry.names(kind):
        obj = registry.get(kind, name)
        groups.setdefault(id(obj), []).append(name)
        objects[id(obj)] = obj
    rows = []
    for key, names in groups.items():
        obj = objects[key]
        own = registry.normalize(getattr(obj, "name", "") or "")
        if own in names:  # the component's own name first, its aliases after
            names = [own, *(n for n in names if n != own)]
        path = getattr(obj, "__qualname__", type(obj).__qualname__)
        module = getattr(obj, "__module__", type(obj).__module__)
        rows.append([f"``{names[0]}``", ", ".join(f"``{n}``" for n in names[1:]),
                     registry.description(kind, names[0]), f"``{module}.{path}``"])
    return sorted(rows)


def _axis(value) -> str:
    """A preset's axis: one name, or names by input kind (``{"tabular": ..., ...}``)."""
    if isinstance(value, dict):
        return ", ".join(f"{kind}: ``{name}``" for kind, name in value.items())
    return f"``{value}``"


def command_help(argv: list[str]) -> str:
    """What ``xai ARGV --help`` prints (80 columns wide)."""
    from xai.cli import main

    out = io.StringIO()
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"
    try:
        with contextlib.redirect_stdout(out):
            main([*argv, "--help"])
    finally:
        if previous is None:
            os.environ.pop("COLUMNS")
        else:
            os.environ["COLUMNS"] = previous
    return out.getvalue()


def method_rows() -> list[list[str]]:
    """One row per named method: the preset's three axes, or where a whole explainer comes
    from, and its description."""
    import xai
    from xai import registry
    from xai.presets import PRESETS, Preset

    presets = {p.name: p for p in PRESETS}
    rows = []
    for name in xai.methods():
        entry = registry.peek("explainer", name)
        if name in presets:
            p = presets[name]
            axes = [_axis(p.removal), _axis(p.behaviour), _axis(p.summary)]
            rows.append([f"``{name}``", *axes, p.description])
        elif isinstance(entry, Preset):
            rows.append([f"``{name}``", f"alias of ``{entry.name}``", "", "",
                         entry.description])
        else:
            rows.append([f"``{name}``", f"whole explainer ({registry.source('explainer', name)})",
                         "", "", registry.description("explainer", name)])
    return rows


class _Table(Directive):
    def render(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="xai_tables"), self.content_offset,
                                container)
        return container.children


class ComponentsDirective(_Table):
    """``xai-components KIND``: a table of the registered components of KIND."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        header = ["name", "also", "what it is", "implemented by"]
        return self.render(_list_table(header, component_rows(self.arguments[0]),
                                       "14 12 52 22"))


class MethodsDirective(_Table):
    """``xai-methods``: a table of the named methods and their three axes."""

    def run(self) -> list[nodes.Node]:
        header = ["method", "removal", "behaviour", "summary", "description"]
        return self.render(_list_table(header, method_rows(), "15 15 15 15 40"))


class HelpDirective(Directive):
    """``xai-help COMMAND...``: the command's ``--help`` as a literal block."""

    optional_arguments = 3

    def run(self) -> list[nodes.Node]:
        text = command_help(list(self.arguments))
        return [nodes.literal_block(text, text, language="text")]


def setup(app):
    """Register the directives."""
    app.add_directive("xai-components", ComponentsDirective)
    app.add_directive("xai-methods", MethodsDirective)
    app.add_directive("xai-help", HelpDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
