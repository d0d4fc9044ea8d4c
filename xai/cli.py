"""The ``xai`` command line.

- ``xai demo --out DIR [--quick]``: the main job (:func:`xai.demo.run_demo`): train two small
  models, explain them with many methods, benchmark Shapley estimators; results in ``DIR``.
- ``xai methods``: the named methods with their removal x behaviour x summary.
- ``xai plugins``: every registered component by kind, with the package and version it came
  from, the plugins that failed to load or were refused a core name (and why), and name
  conflicts between plugins.
- ``xai bench --suite NAME [--methods ...] [--out DIR] ...``: run or resume a benchmark suite
  (:func:`xai.bench.run`); ``xai bench summarise DIR`` writes its tables and figures, ``xai bench
  report DIR [--out FILE]`` summarises and writes them with the run's record into one
  self-contained HTML page (:mod:`xai.report`).

Exit status: 0 on success, 2 on a usage error or an :class:`xai.XaiError` (printed as
``error: ...`` on stderr), 1 when ``xai bench`` stopped because its environment failed (a
folder it cannot write, a full disk, a missing package): its finished cells are kept, and the
same command run again after fixing the cause runs the rest.
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
    for name in xai.methods():  # lists names without importing the whole explainers
        entry = registry.peek("explainer", name)
        if name in presets:
            p = presets[name]
            rows.append((name, f"{p.removal} x {p.behaviour} x {p.summary}", p.description))
        elif isinstance(entry, Preset):
            rows.append((name, f"alias of {entry.name}", entry.description))
        else:  # a whole explainer (a plugin's, or one of xai's reference explainers)
            rows.append((name, f"explainer from {registry.source('explainer', name)}",
                         registry.description("explainer", name)))
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
    print(f"\ncore components also answer to '{registry.CORE_PREFIX}<name>'")
    _print_sources("conflicts (use the namespaced names)", registry.conflicts())
    _print_sources("refused: core names that plugins tried to take (the core keeps them)",
                   registry.refused())
    return 0


def _print_sources(title: str, table: dict) -> None:
    """A titled list of names, each with the sources that registered it (nothing if empty)."""
    if table:
        print(f"\n{title}:")
        for (kind, name), sources in sorted(table.items()):
            print(f"  {kind} {name!r}: " + "; ".join(str(s) for s in sources))


def _cmd_explain(args: argparse.Namespace) -> int:
    """``xai explain MODEL DATA --out DIR``: :func:`xai.explain_files.explain_files`."""
    from xai.explain_files import explain_files

    summary = explain_files(
        args.model, args.data, out=args.out, method=args.method, background=args.background,
        target=args.target, features=args.features, budget=args.budget, seed=args.seed,
        chunk_rows=args.chunk_rows, format=args.format, output_kind=args.output_kind,
        trust=args.trust, trust_pickle=args.trust_pickle, backend=args.backend,
        address=args.address, workers=args.workers, num_cpus=args.num_cpus,
        num_gpus=args.num_gpus, device=args.device, overwrite=args.overwrite, figures=not args.no_figures,
        progress=False if args.quiet else "auto")
    print(f"explained {summary['rows']} rows with {summary['method']} "
          f"({summary['evaluations']} model rows, {summary['seconds']:.1f} s): {args.out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from xai.demo import BENCH_BUDGETS, run_demo

    run_demo(args.out, quick=args.quick, budgets=tuple(args.budgets or BENCH_BUDGETS))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from xai import bench

    if getattr(args, "bench_command", None) in ("summarise", "summarize"):
        bench.summarise(args.dir, figures=not args.no_figures)
        return 0
    if getattr(args, "bench_command", None) == "report":
        return _bench_report(args)
    if args.list:
        from xai import registry

        bench.load_components()
        for name in registry.names("suite"):
            suite = registry.get("suite", name)
            opt = " (opt-in)" if getattr(suite, "opt_in", False) else ""
            print(f"{name:<16} {getattr(suite, 'description', '')}{opt}")
        return 0
    if not args.suite:
        print("error: xai bench needs --suite NAME (or: xai bench summarise DIR, "
              "xai bench --list)", file=sys.stderr)
        return 2
    if args.suite == "performance":
        return _performance(args)
    from xai.errors import BenchEnvironmentError

    try:
        bench.run(suite=args.suite, methods=args.methods, metrics=args.metrics,
                  datasets=args.datasets, models=args.models, seeds=args.seeds,
                  n_explain=args.n_explain, budget=args.budget, out=args.out,
                  rerun_errors=args.rerun_errors, force=args.force, timeout=args.timeout,
                  progress=not args.quiet, verbose=args.verbose, backend=args.backend,
                  address=args.address, workers=args.workers, num_cpus=args.num_cpus,
                  num_gpus=args.num_gpus, device=args.device)
    except BenchEnvironmentError as exc:  # not a usage error: rerun once the cause is fixed
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _bench_report(args: argparse.Namespace) -> int:
    """``xai bench report DIR``: summarise DIR, then write its HTML report."""
    from xai import bench
    from xai.report import bench_html, write_page

    bench.summarise(args.dir, echo=False)
    path = write_page(bench_html(args.dir), args.page or f"{args.dir}/report.html")
    print(f"wrote {path}")
    return 0


def _performance(args: argparse.Namespace) -> int:
    """``xai bench --suite performance``: the side-by-side performance benchmark of the source
    checkout's ``benchmarks/performance`` (xai and its peers in one process)."""
    try:
        from benchmarks.performance import __main__ as perf
    except ImportError:
        print("error: the performance suite lives in the source checkout's benchmarks/ folder; "
              "run it from the repository root (python -m benchmarks performance --out DIR) "
              "after pip install -e '.[bench]'", file=sys.stderr)
        return 2
    argv = ["--out", args.out if args.out != "bench-results" else "results/performance"]
    if args.quick:
        argv.append("--quick")
    if args.methods:
        argv += ["--only", args.methods]
    if args.problems:
        argv += ["--problems", args.problems]
    perf.main(argv)
    return 0


def _explain_parser(sub) -> None:
    """The ``xai explain`` subcommand's options."""
    p = sub.add_parser(
        "explain", help="explain a saved model on a CSV or Parquet file (chunked, resumable)",
        description="Explain MODEL (.skops; .joblib/.pkl with --trust-pickle; TorchScript "
                    ".pt/.ts; or package.module:name) on every row of DATA (.csv or .parquet), "
                    "chunk by chunk, into --out: values, stderr and base_values tables (one "
                    "row per input row, columns named by feature), summary.json/.md and "
                    "figures. The same command run again resumes where it stopped.")
    p.add_argument("model", metavar="MODEL", help="model file or package.module:name")
    p.add_argument("data", metavar="DATA", help="rows to explain (.csv or .parquet)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--method", default="shap", metavar="M",
                   help="a named method (xai methods; default: shap)")
    p.add_argument("--background", metavar="FILE", help="background rows (.csv or .parquet; "
                   "default: 100 rows of DATA, evenly spaced, for methods that need one)")
    p.add_argument("--target", metavar="T", help="output to explain: an index, a class name, "
                   "'predicted' or 'all' (default: as xai.explain)")
    p.add_argument("--features", nargs="+", metavar="COL", help="the columns given to the "
                   "model (default: its feature_names_in_, else every column)")
    p.add_argument("--budget", type=int, metavar="N", help="model rows per explained row")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default: 0)")
    p.add_argument("--chunk-rows", type=int, default=1000, metavar="R",
                   help="rows read, explained and written at a time (default: 1000)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet",
                   help="output tables (default: parquet)")
    p.add_argument("--output-kind", choices=("logits", "probability", "raw"),
                   help="what the model returns (default: guessed)")
    p.add_argument("--trust", action="append", default=[], metavar="TYPE",
                   help="a type a .skops file may build beyond skops' defaults (repeat)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load a .joblib/.pkl pickle, which runs code from the file: only for "
                        "files you made or trust")
    _add_ray_options(p, "chunk", "results")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run of other options in DIR instead of refusing")
    p.add_argument("--no-figures", action="store_true", help="tables and summary only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_explain)



def _add_ray_options(p: argparse.ArgumentParser, unit: str, written: str) -> None:
    """The options that choose where each ``unit`` (a chunk, a cell) runs: here or on Ray."""
    p.add_argument("--backend", default="local", metavar="NAME",
                   help=f"where {unit}s run: local (this process) or ray (a task per {unit} "
                        f"on a Ray cluster; {written} written here as they arrive)")
    p.add_argument("--address", metavar="HOST:PORT", help="the Ray cluster (default: "
                   "RAY_ADDRESS, else a local cluster); with --backend ray")
    p.add_argument("--workers", type=int, metavar="N", help=f"{unit}s running at once on Ray "
                   "(default: the cluster's CPUs / --num-cpus)")
    p.add_argument("--num-cpus", type=float, default=1, metavar="C",
                   help=f"CPUs per {unit}'s task on Ray, and its torch threads (default: 1)")
    p.add_argument("--num-gpus", type=float, metavar="G", help=f"GPUs per {unit}'s task on "
                   "Ray (default: 1 with a cuda --device, else 0)")
    p.add_argument("--device", metavar="D", help="where torch models run: cpu, cuda, cuda:1 "
                   "(default: where the model is); on Ray, checked by each task, so this "
                   "machine needs no GPU")

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
    _explain_parser(sub)
    bench = sub.add_parser(
        "bench", help="run (or resume) a benchmark suite; `xai bench summarise DIR`",
        description="Run a benchmark suite (data sets x models x methods x metrics), appending "
                    "one row per cell to DIR/results.jsonl; a re-run resumes where it stopped. "
                    "`xai bench summarise DIR` writes the tables and figures again.")
    bench.add_argument("--suite", metavar="NAME", help="suite name (see --list)")
    bench.add_argument("--list", action="store_true", help="list the registered suites")
    for opt, what in (("--methods", "methods"), ("--metrics", "metrics"),
                      ("--datasets", "data sets (labels or registered names)"),
                      ("--models", "models")):
        bench.add_argument(opt, metavar="A,B", help=f"comma-separated {what} "
                                                    "(default: the suite's)")
    bench.add_argument("--seeds", default="0", metavar="0,1",
                       help="comma-separated seeds (default: 0)")
    bench.add_argument("--n-explain", type=int, metavar="N",
                       help="test rows explained per (data set, seed, model, method)")
    bench.add_argument("--budget", type=int, metavar="B",
                       help="model-evaluation budget for methods that take one")
    bench.add_argument("--out", default="bench-results", metavar="DIR",
                       help="output folder (default: bench-results)")
    bench.add_argument("--rerun-errors", action="store_true",
                       help="run cells whose last result is an error again")
    bench.add_argument("--force", action="store_true", help="recompute every cell")
    bench.add_argument("--timeout", type=float, metavar="S",
                       help="seconds per cell; longer cells are recorded as Timeout errors")
    bench.add_argument("--verbose", action="store_true", help="one status line per cell")
    _add_ray_options(bench, "cell", "rows")
    bench.add_argument("--quick", action="store_true",
                       help="performance suite: small sizes (minutes)")
    bench.add_argument("--problems", metavar="1,2", help="performance suite: problem numbers "
                       "(default: all); --methods then filters contenders by name")
    bench.add_argument("--quiet", action="store_true",
                       help="no progress bar and no summary table on the terminal")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="summarise|report")
    summ = bench_sub.add_parser("summarise", aliases=["summarize"],
                                help="write results.md/.csv/.json and figures for DIR")
    summ.add_argument("dir", metavar="DIR", help="a benchmark output folder")
    summ.add_argument("--no-figures", action="store_true", help="tables only")
    report = bench_sub.add_parser(
        "report", help="summarise DIR and write one self-contained HTML page (tables, figures, "
                       "machine, versions, seeds, git commit)")
    report.add_argument("dir", metavar="DIR", help="a benchmark output folder")
    report.add_argument("--out", dest="page", metavar="FILE",
                        help="the page (default: DIR/report.html)")
    bench.set_defaults(func=_cmd_bench)
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
