"""The ``rtconv`` command: one entry point, one small module per subcommand.

Each subcommand module in this package defines ``HELP`` (one line),
``configure(parser)`` and ``run(args) -> int``.  Modules import heavy or
hardware-bound libraries (sounddevice, Qt) inside ``run`` only, so
``rtconv --help`` works on a machine without a sound card or a display.

Exit status: 0 success, 1 failure (one line on stderr saying why), 2 usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import RtconvError

# Order shown in --help.  A name whose module is absent is simply not offered.
COMMANDS = (
    "process",
    "compare",
    "info",
    "filter",
    "export",
    "train",
    "vad",
    "data",
    "live",
    "devices",
    "gui",
    "bench",
    "demo",
)


def _modules():
    for name in COMMANDS:
        try:
            yield name, importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise


def get_parser() -> tuple[argparse.ArgumentParser, dict]:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="rtconv",
        description="Real-time convolutional audio filters: process files, train, run live.",
    )
    parser.add_argument("--version", action="version", version=f"rtconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    mods = {}
    for name, mod in _modules():
        p = sub.add_parser(
            name,
            help=mod.HELP,
            description=getattr(mod, "DESCRIPTION", mod.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.configure(p)
        mods[name] = mod
    return parser, mods


def _signals_raise(*signums: int):
    """Make ``signums`` raise KeyboardInterrupt while a command runs; return the undo.

    SIGINT is always among them: a command a shell starts in the background
    inherits SIGINT as ignored, and Python then installs no KeyboardInterrupt,
    so neither Ctrl-C nor ``kill -INT`` would stop it.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        return lambda: None
    old = {s: signal.signal(s, signal.default_int_handler) for s in (signal.SIGINT, *signums)}
    return lambda: [signal.signal(s, h) for s, h in old.items()]


def main(argv: list[str] | None = None) -> int:
    parser, mods = get_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse ends a list of inputs at the first option: `process a.wav --wet 0.5 b.wav` left
        # b.wav over; names after options join the inputs, in order, and anything else is refused
        if isinstance(getattr(args, "inputs", None), list) and not any(a.startswith("-") and a != "-" for a in extra):
            args.inputs.extend(extra)
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    undo = _signals_raise(*getattr(mods[args.command], "STOP_SIGNALS", ()))
    try:
        return int(mods[args.command].run(args) or 0)
    except RtconvError as e:
        print(f"rtconv {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rtconv {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rtconv info x | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        undo()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
