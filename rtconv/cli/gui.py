"""``rtconv gui``: the desktop app (live spectra, kernel stems, controls, file mode)."""

from __future__ import annotations

import argparse

from .common import live_block, nonnegative_seconds, positive_int

HELP = "open the desktop app: live spectra, kernel stems, controls, file A/B"

DESCRIPTION = """\
Open the rtconv window.

Left: audio set-up (host API, devices, sample rate, block size, start/stop),
the model (pick one from models/ or open any checkpoint; it is hot-swapped
into the running stream, and can be reloaded whenever training rewrites the
file), controls (bypass, dry/wet, output gain, limiter, record), level
meters and health (dropouts, block time against the budget, CPU load,
latency).  Right: live input/output spectra with the output-input
difference, scrolling spectrograms, every conv layer's kernel as stem plots
with frequency responses, and a file mode to process a recording and
compare A/B.

Choices are remembered between runs (audio settings only if the last
Start with them did not fail).  A device or host API that is not there
is refused, as rtconv live refuses it.  The window needs PyQt6 and pyqtgraph
(pip install 'rtconv[gui]').

examples:
  rtconv gui
  rtconv gui --model models/lab-denoiser.safetensors --start
  rtconv gui --screenshot window.png --quit-after 3
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", metavar="PATH", help="checkpoint to load (default: the last one used, else the shipped default)")
    parser.add_argument("--start", action="store_true",
                        help="start audio right away; if it cannot start, says why on stderr (as rtconv live "
                             "does) and ends with status 1 when the window closes")
    g = parser.add_argument_group("audio (defaults: the last choices, else the system defaults)")
    g.add_argument("--hostapi", metavar="NAME", help="host API, e.g. 'JACK Audio Connection Kit'")
    g.add_argument("--input-device", metavar="NAME", help="input device name")
    g.add_argument("--output-device", metavar="NAME", help="output device name")
    g.add_argument("--sample-rate", "--samplerate", "-r", dest="sample_rate", type=positive_int, metavar="HZ",
                   help="sample rate in Hz")
    g.add_argument("--block-size", "-b", type=live_block, metavar="N", help="frames per audio block")
    g.add_argument("--channels", type=positive_int, metavar="N", help="audio channels (1 or 2)")
    g = parser.add_argument_group("window")
    g.add_argument("--tab", choices=("live", "kernels", "file"), default="live", help="tab shown first (default: %(default)s)")
    g.add_argument("--recording", metavar="FILE", help="open FILE in file mode and process it with the model")
    g.add_argument("--settings", metavar="INI", help="keep settings in this INI file instead of the user's")
    g.add_argument("--screenshot", metavar="PNG", help="render the window to PNG and exit (after --quit-after, default 2 s)")
    g.add_argument("--quit-after", type=nonnegative_seconds, metavar="S", help="close the window after S seconds")


def display_problem(env=None, platform: str | None = None) -> str | None:
    """Why Qt could not open a window here, in one sentence with the fix; None if it can.

    Qt's own answer is an abort with a core dump ("could not connect to
    display", "xcb-cursor0 ... is needed"): this is checked first.
    """
    import ctypes.util
    import os
    import sys

    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    qpa = env.get("QT_QPA_PLATFORM", "")
    if qpa and not qpa.startswith(("xcb", "wayland")):  # offscreen, minimal, vnc ... need no display
        return None
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return ("there is no display to open the window on (DISPLAY and WAYLAND_DISPLAY are unset): run it "
                "on the desktop, or under a virtual one with `xvfb-run rtconv gui`, or set "
                "QT_QPA_PLATFORM=offscreen to make screenshots (`rtconv gui --screenshot out.png`).")
    if env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY") and qpa in ("", "xcb") \
            and ctypes.util.find_library("xcb-cursor") is None:
        return ("Qt's X11 plugin needs the system library libxcb-cursor0, which is not installed: "
                "apt-get install libxcb-cursor0 (the README's Quick start lists Qt's other libraries).")
    return None


def run(args: argparse.Namespace) -> int:
    from ..errors import RtconvError

    problem = display_problem()
    if problem is not None:
        raise RtconvError(problem)
    try:
        from rtconv_gui.app import run as run_app
    except ImportError as e:
        raise RtconvError(
            f"the desktop app needs PyQt6 and pyqtgraph ({e}); install them with pip install 'rtconv[gui]'."
        ) from None
    return run_app(args)
