"""Start the desktop app: QApplication, the window, a model, optionally audio and a screenshot."""

from __future__ import annotations

import argparse
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

__all__ = ["build_window", "run", "save_screenshot"]

TABS = {"live": 0, "kernels": 1, "file": 2}


def _app() -> QtWidgets.QApplication:
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(["rtconv"])
        app.setApplicationName("rtconv")
        app.setOrganizationName("rtconv")
    return app


def _devices_given(args: argparse.Namespace) -> dict:
    """The host API and devices named on the command line, as the audio box's choice.

    They are looked up as ``rtconv live`` looks them up (an index or part of a name; a device alone brings its host
    API), and one that matches nothing, or several, is refused in live's sentence: the window used to show the
    default device instead, silently.
    """
    from rtconv.errors import DeviceError

    from . import engine

    c = {} if args.hostapi is None else {"hostapi": engine.find_hostapi(args.hostapi)}
    for key, kind in (("input_device", "input"), ("output_device", "output")):
        query = getattr(args, key)
        if query is None:
            continue
        d = engine.find_device(query, kind, args.hostapi)
        c[key] = d["name"]
        if c.setdefault("hostapi", d["hostapi"]) != d["hostapi"]:
            raise DeviceError(f"--output-device {query!r} is on host API {d['hostapi']!r} and --input-device "
                              f"{args.input_device!r} on {c['hostapi']!r}, and one stream runs on one; name devices "
                              "of the same host API (run `rtconv devices` to list them).")
    return c


def build_window(args: argparse.Namespace):
    """The window with the model from ``args`` (or the last / default one) loaded.

    Raises :class:`rtconv.errors.DeviceError` when ``args`` names a host API or device that is not there.
    """
    import pyqtgraph as pg

    from . import engine
    from .window import MainWindow

    chosen = _devices_given(args)
    for key, value in (("sample_rate", args.sample_rate), ("block_size", args.block_size), ("channels", args.channels)):
        if value is not None:
            chosen[key] = value
    # plain lines: antialiased paths cost several times more paint (and GIL) time per frame
    pg.setConfigOptions(antialias=False, foreground="#cccccc")
    settings = QtCore.QSettings(str(args.settings), QtCore.QSettings.Format.IniFormat) if args.settings else None
    win = MainWindow(settings, audio=chosen)
    path = engine.resolve_model(args.model) if args.model else (win.last_model() or engine.default_model_path())
    if path is None:
        win.show_message("no model found in models/; load one with Open…", True)
    else:
        win.load_model(str(path))
    if args.recording:
        if win.file_panel.open(args.recording) and win.model is not None:
            win.file_panel.process()
    win.tabs.setCurrentIndex(TABS[args.tab])
    return win


def _devices_available() -> bool:
    from . import engine

    try:
        return any(d.get("max_input_channels", 0) > 0 for d in engine.list_devices()) and any(
            d.get("max_output_channels", 0) > 0 for d in engine.list_devices()
        )
    except Exception:  # noqa: BLE001 - no PortAudio means no audio, not a crash
        return False


def save_screenshot(win, path: str | Path) -> Path:
    """Render the window to ``path`` (PNG); returns the path."""
    from rtconv.errors import RtconvError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file where a folder should be, or no permission
        raise RtconvError(f"could not write the screenshot {str(path)!r}: cannot make its folder "
                          f"{str(path.parent)!r} ({e.strerror or e}); name a path in a folder you can write.") from None
    QtWidgets.QApplication.processEvents()
    if not win.grab().save(str(path)):
        raise RtconvError(f"could not write the screenshot {str(path)!r}; check the folder is writable.")
    return path


def _close_on_signals(win, app, result: dict):
    """Ctrl-C and SIGTERM close the window as its close button does (settings saved, the stream stopped and its
    recording finalized), and the run ends with 128 + the signal's number; returns the undo.

    Qt's event loop runs no Python, so Python's handlers (and KeyboardInterrupt) waited for the next
    Python slot; a timer wakes the interpreter every 200 ms so that a signal is heard within that.
    """
    import signal
    import sys
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    names = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}

    def close(signum, frame) -> None:
        if result.get("signal"):
            return
        result["signal"], result["rc"] = signum, 128 + signum
        print(f"rtconv gui: stopped by {names.get(signum, signum)}; closing the window", file=sys.stderr, flush=True)
        QtCore.QTimer.singleShot(0, lambda: (win.close(), app.quit()))

    old = {s: signal.signal(s, close) for s in names}
    wake = QtCore.QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)

    def restore() -> None:
        wake.stop()
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def _start(win) -> str | None:
    """Start audio as ``--start`` asks; why it could not, in one sentence in the command line's words, or None."""
    if win.model is None:
        from . import engine

        return win.model_error or (f"there is no model to play: none was found in {str(engine.models_dir())!r}; "
                                   "name one with --model.")
    return None if win.start_stream() else win.start_error


def run(args: argparse.Namespace) -> int:
    """Run the app until the window closes (or ``--quit-after`` seconds, or Ctrl-C / SIGTERM).

    A ``--start`` that fails says why on stderr at once, as ``rtconv live`` says it, and the run ends with 1 (as
    ``rtconv live``'s does) when the window closes; the window stays open meanwhile, showing why, so that other
    devices can be chosen.
    """
    import sys

    app = _app()
    win = build_window(args)
    if win.audio_notice:
        print(f"rtconv gui: {win.audio_notice}", file=sys.stderr, flush=True)
    win.show()
    failed = None
    if args.start:
        failed = _start(win)
        if failed is not None:
            print(f"rtconv gui: error: {failed}", file=sys.stderr, flush=True)
    elif args.screenshot and _devices_available():
        if win.model is not None:
            win.start_stream()
    elif win.audio_host is not None and not args.screenshot:
        win.audio_host.start()  # spawned now, it imports the engine while the user looks around
    if args.recording:
        win.file_panel.wait()  # a screenshot of file mode shows the processed spectra
    win.show_audio_notice()  # again: the model loaded and a start cleared the banner, or a failure filled it
    quit_after = args.quit_after
    if args.screenshot and quit_after is None:
        quit_after = 2.0
    result = {"rc": 0}

    def finish() -> None:
        if args.screenshot:
            try:
                save_screenshot(win, args.screenshot)
                print(f"wrote {args.screenshot}")
            except Exception as e:  # noqa: BLE001
                print(f"rtconv gui: error: {e}", file=sys.stderr, flush=True)
                result["rc"] = 1
        win.close()
        app.quit()

    if quit_after is not None:
        QtCore.QTimer.singleShot(int(1000 * quit_after), finish)
    restore = _close_on_signals(win, app, result)
    try:
        app.exec()
    finally:
        restore()
    win.shutdown()
    # Tear the window down now, while the QApplication exists: left to Python's finalizer,
    # Qt and pyqtgraph objects die in arbitrary order after it and can crash the exit
    # (measured: 4 segfaults in 15 `--screenshot` runs before this).
    win.deleteLater()
    win = None  # the last reference (not `del`: finish() above closes over the name)
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete.value)
    import gc

    gc.collect()
    if failed is not None and result["rc"] == 0:
        return 1
    return result["rc"]
