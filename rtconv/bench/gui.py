"""Does the GUI cost the live stream anything?  A soak with and without the window.

Runs the live stream (default model, 48 kHz, 128-sample blocks) on a JACK
server with the dummy backend, in alternating rounds:

* ``no GUI`` - the stream alone, the main thread asleep;
* ``GUI``    - the same stream inside the rtconv window with every live plot
  drawing (spectra, spectrograms, meters at ~30 fps, text at 1 Hz).

The stream runs where ``rtconv gui`` runs it, in the window's audio process
(:mod:`rtconv.live.host`); ``--audio inprocess`` runs it in the GUI's own
process instead, to measure what that separation buys.

For each round it prints overflows and underflows (from the session's
stats, counted during that round), the block-time median/p99 against the
budget, the main (GUI) thread's CPU use and the whole process's CPU use,
both as a percentage of one core, and the display frame rate.  Rounds
alternate so both conditions see the same machine load.

Its own jackd (``-d dummy``, realtime scheduling where allowed) is started
and stopped here (:func:`rtconv.bench.jackd.jack_server`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

HELP = "live soak with and without the GUI window: dropouts, block time, GUI CPU use"


def configure(parser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each round in s (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each condition (default: %(default)s)")
    parser.add_argument("--sample-rate", "--samplerate", dest="sample_rate", type=int, default=48000,
                        help="Hz (default: %(default)s)")
    parser.add_argument("--block-size", type=int, default=128, help="frames (default: %(default)s)")
    parser.add_argument("--period", type=int, default=128, help="jackd dummy period in frames (default: %(default)s)")
    parser.add_argument("--model", metavar="PATH", help="checkpoint (default: the shipped default model)")
    parser.add_argument("--tab", choices=("live", "kernels", "file"), default="live",
                        help="tab shown in the GUI rounds: live draws every plot, the others only the meters "
                             "(default: %(default)s)")
    parser.add_argument("--audio", choices=("process", "inprocess"), default="process",
                        help="where the stream runs: the GUI's audio process (as `rtconv gui` does) or the GUI's "
                             "own process, for comparison (default: %(default)s)")
    parser.add_argument("--fixed-fps", action="store_true",
                        help="keep the display at 30 fps even while audio drops out (default: back off)")



def _counts(stats: dict) -> tuple[int, int]:
    under = stats["output_underflows"] + stats.get("worker_underruns", 0)
    return int(stats["input_overflows"]), int(under)


def _block_times(stats: dict) -> str:
    b = stats["block_ms"]
    return f"{b['median']:.3f} / {b['p99']:.3f} of {b['budget']:.3f}"


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def run(args) -> int:
    from rtconv.bench.jackd import jack_server

    # its own dummy-backend jackd, realtime where allowed (as a desktop's audio server and
    # `rtconv bench live` run): the clients' audio threads then get realtime scheduling too;
    # on leaving, PortAudio lets go of it before it stops
    with jack_server(args.sample_rate, args.period) as jack:
        return _soak(args, jack)


def _soak(args, jack) -> int:
    from PyQt6 import QtCore, QtWidgets

    from rtconv_gui import engine
    from rtconv_gui.window import MainWindow

    default_interval = sys.getswitchinterval()
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["rtconv-bench"])
    app.setApplicationName("rtconv-bench")  # kept alive (and named) for the whole soak
    tmp = tempfile.TemporaryDirectory()  # the user's own GUI settings stay untouched
    settings = QtCore.QSettings(os.path.join(tmp.name, "bench.ini"), QtCore.QSettings.Format.IniFormat)
    win = None
    rows = []
    try:
        import rtconv

        path = engine.resolve_model(args.model)
        model = rtconv.load(path)
        win = MainWindow(settings, audio_process=args.audio == "process")
        win.set_model(model, str(path))
        win.spectrum.adaptive.setChecked(not args.fixed_fps)
        choice = win.audio.choice()
        jack_api = next((a["name"] for a in engine.list_hostapis() if "JACK" in a["name"]), None)
        choice.update(hostapi=jack_api, sample_rate=args.sample_rate, block_size=args.block_size, channels=1)
        win.audio.set_choice(choice)
        if not win.start_stream():
            print(f"cannot start the stream: {win.last_message[0]}")
            return 1
        print(f"model {win._model_name(model)} ({path}), {args.sample_rate} Hz, {args.block_size}-sample blocks, "
              f"host API {jack_api!r}, jackd {'realtime' if jack.realtime else 'not realtime'}, "
              f"{args.seconds:g} s per round, GIL switch interval "
              f"{sys.getswitchinterval() * 1e3:g} ms while streaming (Python default {default_interval * 1e3:g} ms), "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, display "
              f"{'fixed at 30 fps' if args.fixed_fps else '30 fps, backing off on dropouts'}, {args.tab} tab shown")

        def soak(with_gui: bool) -> dict:
            before = _counts(win.session.stats())
            if with_gui:
                win.show()
                win.tabs.setCurrentIndex(("live", "kernels", "file").index(args.tab))
            else:
                win.hide()
            win.frames = 0
            t0, c0, p0 = time.monotonic(), time.thread_time(), time.process_time()
            a0 = _cpu_seconds(win.audio_host.pid) if win.audio_host is not None else 0.0
            if with_gui:
                loop = QtCore.QEventLoop()
                QtCore.QTimer.singleShot(int(1000 * args.seconds), loop.quit)
                loop.exec()
            else:
                time.sleep(args.seconds)
            wall = time.monotonic() - t0
            gui_cpu = time.thread_time() - c0
            proc_cpu = time.process_time() - p0
            audio_cpu = (_cpu_seconds(win.audio_host.pid) - a0) if win.audio_host is not None else 0.0
            s = win.session.stats()
            after = _counts(s)
            return {
                "gui": with_gui,
                "overflows": after[0] - before[0],
                "underflows": after[1] - before[1],
                "blocks": _block_times(s),
                "gui_cpu": 100 * gui_cpu / wall,
                "proc_cpu": 100 * proc_cpu / wall,
                "audio_cpu": 100 * audio_cpu / wall,
                "fps": win.frames / wall,
            }

        soak(False)  # warm-up: first blocks, JIT, caches
        print(f"{'condition':10} {'overflows':>9} {'underflows':>10} {'block ms median / p99 of budget':>32} "
              f"{'GUI thread CPU':>14} {'process CPU':>11} {'audio proc CPU':>14} {'display fps':>11}", flush=True)
        for _ in range(args.rounds):
            for gui in (False, True):
                r = soak(gui)
                rows.append(r)
                print(f"{'GUI' if r['gui'] else 'no GUI':10} {r['overflows']:9d} {r['underflows']:10d} "
                      f"{r['blocks']:>32} {r['gui_cpu']:13.1f}% {r['proc_cpu']:10.1f}% {r['audio_cpu']:13.1f}% "
                      f"{r['fps']:11.1f}", flush=True)
        for cond in (False, True):
            sel = [r for r in rows if r["gui"] is cond]
            print(f"total {'GUI' if cond else 'no GUI':7}: overflows {sum(r['overflows'] for r in sel)}, "
                  f"underflows {sum(r['underflows'] for r in sel)}, process CPU "
                  f"{sum(r['proc_cpu'] for r in sel) / len(sel):.1f}% of one core, GUI thread "
                  f"{sum(r['gui_cpu'] for r in sel) / len(sel):.1f}%, audio process "
                  f"{sum(r['audio_cpu'] for r in sel) / len(sel):.1f}%", flush=True)
    finally:
        if win is not None:
            win.shutdown()
            win.close()

    return 0
