"""Make ``gui/screenshot.png``: the window live on JACK's dummy backend, the demo recording as microphone.

``python -m rtconv_gui.screenshot [OUT.png] [--seconds S]`` starts a dummy-backend
jackd (as the tests do), opens the window with the default model, starts the
stream, loops ``recordings/demo_noisy.wav`` into its input through a JACK
client, lets the plots run for ``S`` seconds and saves the window.  Needs
jackd2 and libportaudio2; Qt may run offscreen (``QT_QPA_PLATFORM=offscreen``)
or on a display (``xvfb-run -s "-screen 0 1600x1000x24" python -m rtconv_gui.screenshot``).

The picture goes into the README, so it shows no path of the machine that
took it: the record folder reads as the relative ``recordings``
(:func:`tidy`), and a window that still shows an absolute path
(:func:`shown_paths`) is not saved.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: An absolute path in a text: ``/a``, ``~/a``, ``C:\a`` (not ``frames/s``, ``in / out`` or ``</span>``).
_ABSOLUTE = re.compile(r"(?<![\w.<])(?:~?/[\w.+-]|[A-Za-z]:\\)")


def tidy(win) -> None:
    """Make ``win`` show no machine paths: the record folder as ``recordings`` (relative to the
    working directory, where recordings go all the same)."""
    win.controls.record_dir.setText("recordings")


def shown_paths(win) -> list[str]:
    """The texts of ``win``'s visible widgets that hold an absolute path (a README picture has none)."""
    from PyQt6 import QtWidgets

    texts = []
    for w in win.findChildren(QtWidgets.QWidget):
        if not w.isVisible():
            continue
        if isinstance(w, (QtWidgets.QLabel, QtWidgets.QLineEdit, QtWidgets.QAbstractButton)):
            texts.append(w.text())
        elif isinstance(w, QtWidgets.QComboBox):
            texts.append(w.currentText())
        elif isinstance(w, QtWidgets.QGroupBox):
            texts.append(w.title())
    return [t for t in texts if _ABSOLUTE.search(t)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default=str(ROOT / "gui" / "screenshot.png"))
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--recording", default=str(ROOT / "recordings" / "demo_noisy.wav"))
    args = p.parse_args(argv)

    import soundfile as sf
    from PyQt6 import QtCore, QtWidgets

    from rtconv.live.client import PORTS
    from rtconv.bench.jackd import Loopback, jack_server, wait_for

    from .app import build_window, save_screenshot

    audio, rate = sf.read(args.recording, dtype="float32", always_2d=True)
    with jack_server(int(rate), 128) as server:
        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["rtconv"])
        ns = argparse.Namespace(settings=str(Path(os.environ.get("TMPDIR", "/tmp")) / "rtconv-shot.ini"),
                                hostapi="JACK Audio Connection Kit", input_device=None, output_device=None,
                                sample_rate=int(rate), block_size=128, channels=1, model=None, recording=None,
                                tab="live")
        win = build_window(ns)
        tidy(win)
        win.resize(1500, 900)
        win.show()
        lb = None
        try:
            if not win.start_stream():
                raise SystemExit(f"could not start the stream: {win.banner.text()}")
            lb = Loopback(server, audio[:, :1], capture_seconds=1.0, loop=True)
            wait_for(lambda: len(lb.player.get_ports(PORTS, is_input=True, is_audio=True)) > 0, 20)
            lb.connect()
            lb.play()
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
                time.sleep(0.01)
            win.refresh_text()
            paths = shown_paths(win)
            if paths:
                raise SystemExit(f"the window shows machine paths {paths!r}; not saving a README screenshot of it")
            print(f"wrote {save_screenshot(win, args.out)}")
        finally:
            if lb is not None:
                lb.close()
            win.shutdown()
            win.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
