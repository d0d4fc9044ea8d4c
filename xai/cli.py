"""The ``xai`` command line.

- ``xai demo --out DIR [--quick]``: the main job (:func:`xai.demo.run_demo`): train two small
  models, explain them with many methods, benchmark Shapley estimators; results in ``DIR``.
- ``xai methods``: the named methods with their removal x behaviour x summary.
- ``xai plugins``: every registered component by kind, with the package and version it came
  from, and the plugins that failed to load (and why).

Exit status: 0 on success, 2 on a usage error or an :class:`xai.XaiError` (printed as
``error: ...`` on stderr).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _cmd_methods(args: argparse.Namespace) -> int:
    import xai
    from xai import registry
    from xai.presets import PRESETS, Preset

    presets = {p.name: p for p in PRESETS}
    rows = []
    for name in xai.methods():
        obj = registry.get("explainer", name)
        if name in presets:
            p = presets[name]
            rows.append((name, f"{p.removal} x {p.behaviour} x {p.summary}", p.description))
        elif isinstance(obj, Preset):
            rows.append((name, f"alias of {obj.name}", obj.description))
        else:  # a whole explainer registered by a plugin
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            rows.append((name, f"explainer from {registry.source('explainer', name)}",
                         doc[0] if doc else ""))
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    print(f"{'method':<{w1}}  {'removal x behaviour x summary':<{w2}}  description")
    for name, axes, desc in rows:
        print(f"{name:<{w1}}  {axes:<{w2}}  {desc}")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    import xai
    from xai import registry
    from xai.plugins import plugin_records

    records = plugin_records()
    print("plugins:")
    for r in records:
        status = "ok" if r.error is None else f"FAILED: {r.error}"
        count = sum(len(v) for v in r.components.values())
        print(f"  {r.name:<12} {r.source.package} {r.source.version}  "
              f"{count} components  {status}")
    for kind in registry.KINDS:
        names = registry.names(kind)
        if not names:
            continue
        plural = {"summary": "summaries", "behaviour": "behaviours"}.get(kind, kind + "s")
        print(f"\n{plural}:")
        for name in names:
            src = registry.source(kind, name)
            origin = f"xai {xai.__version__} (core)" if src is registry.CORE else str(src)
            print(f"  {name:<36} {origin}")
    conflicts = registry.conflicts()
    if conflicts:
        print("\nconflicts (use the namespaced names):")
        for (kind, name), sources in sorted(conflicts.items()):
            print(f"  {kind} {name!r}: " + "; ".join(str(s) for s in sources))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from xai.demo import BENCH_BUDGETS, run_demo

    run_demo(args.out, quick=args.quick, budgets=tuple(args.budgets or BENCH_BUDGETS))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xai", description="Explain trained models by removing features "
                                "(removal x behaviour x summary).")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the main job: train, explain, benchmark, plot",
                          description="Train a tabular MLP and a digits CNN, explain them with "
                                      "many methods, benchmark Shapley estimators, and write "
                                      "figures, summary.md and summary.json into --out.")
    demo.add_argument("--out", default="xai-output", metavar="DIR",
                      help="output folder (default: xai-output)")
    demo.add_argument("--quick", action="store_true", help="a smaller, faster run")
    demo.add_argument("--budgets", type=int, nargs="+", metavar="ROWS",
                      help="benchmark budgets in model rows per explicand "
                           "(default: 1000 2000 5000 10000 20000)")
    demo.set_defaults(func=_cmd_demo)
    methods = sub.add_parser("methods", help="list the named methods and their three axes")
    methods.set_defaults(func=_cmd_methods)
    plugins = sub.add_parser("plugins", help="list components by kind with their source "
                                             "package and version, and failed plugins")
    plugins.set_defaults(func=_cmd_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    if args.version:
        from xai import __version__

        print(f"xai {__version__}")
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    from xai.errors import XaiError

    try:
        return args.func(args)
    except XaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. head: not an error
        sys.stdout = None
        return 0
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
