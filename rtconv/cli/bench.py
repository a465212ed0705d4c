"""``rtconv bench NAME``: benchmarks that print numbers measured side by side.

Each benchmark is a module in :mod:`rtconv.bench` with ``HELP``,
``configure(parser)`` and ``run(args) -> int``; the package's modules without
``HELP`` (the held-out test set, the dummy JACK server) are tooling, not
benchmarks.  Benchmarks are not tests: they print medians, p99s and ratios
against a reference measured in the same run, because these machines are
shared and noisy.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

HELP = "run a benchmark (engine, process, train, live, gui, denoise, export, classify, vad) and print its table"

from .. import bench as _bench_pkg


def _benchmarks():
    for info in sorted(pkgutil.iter_modules(_bench_pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{_bench_pkg.__name__}.{info.name}")
        if hasattr(mod, "HELP"):
            yield info.name, mod


def configure(parser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, mod in _benchmarks():
        # descriptions are written as plain text with their own line breaks and lists
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.configure(p)
        p.set_defaults(_bench=mod)


def run(args) -> int:
    return args._bench.run(args)
