"""``rtconv bench live``: a soak of the live path on a dummy JACK server.

Starts its own ``jackd -d dummy`` (realtime scheduling where allowed), runs
``LiveStream`` with the default model at 48 kHz in 128-frame blocks while a
second JACK client plays noise into it, and reports dropouts (goal 0), block
times against the budget, CPU load, and the round-trip latency measured by
an impulse through the loopback next to the latency the stats report.
The model runs in the audio callback (a worker thread behind a few
blocks of buffering measured worse, see :mod:`rtconv.live`, and is gone);
``--gil-load`` adds a Python thread that keeps the interpreter busy, as a GUI would;
``--hogs N`` runs N CPU-bound processes at normal priority through the
whole run (other programs loading the machine); ``--boost both`` runs the
callback with and without lending realtime priority to the stream's other
Python threads (``LiveStream(boost_threads=...)``), one after the other.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

import numpy as np

from ..resample import LIVE_QUALITY, QUALITIES

HELP = "soak the live path on a dummy JACK server: dropouts, block times, measured vs reported latency"
DESCRIPTION = __doc__.split("\n\n", 1)[1]


def configure(parser: argparse.ArgumentParser) -> None:
    from ..cli.common import (live_block, nonnegative_seconds, positive_seconds, process_count, sample_rate_hz,
                              unit_fraction)

    parser.add_argument("--seconds", type=positive_seconds, default=600.0, metavar="S",
                        help="soak length per round, counted from when the noise plays (default: %(default)s)")
    parser.add_argument("--model", "-m", metavar="PATH", help="checkpoint (default: the shipped default model)")
    parser.add_argument("--sample-rate", "--samplerate", dest="sample_rate", type=sample_rate_hz, default=48000, metavar="HZ",
                        help="JACK rate in Hz (default: %(default)s)")
    parser.add_argument("--block-size", type=live_block, default=128, metavar="N", help="frames per callback (default: %(default)s)")
    parser.add_argument("--period", type=live_block, default=128, metavar="N", help="JACK period in frames (default: %(default)s)")
    parser.add_argument("--player", choices=("process", "thread"), default="process",
                        help="soak noise source: a JACK client in its own process (like a real input), or a "
                             "Python JACK client in this process, competing for the interpreter lock "
                             "(default: %(default)s)")
    parser.add_argument("--baseline", type=nonnegative_seconds, default=0.0, metavar="S",
                        help="first run a pass-through Python callback for S seconds: the dropouts the machine alone causes")
    parser.add_argument("--switch-interval", type=positive_seconds, default=0.0002, metavar="S",
                        help="GIL switch interval while streaming, seconds (default: %(default)s)")
    parser.add_argument("--resample-quality", default=LIVE_QUALITY, choices=QUALITIES,
                        help="resampler when the model rate differs, as rtconv live's (default: %(default)s)")
    parser.add_argument("--no-gc-freeze", dest="freeze_gc", action="store_false",
                        help="leave the garbage collector as it is (default: gc.freeze() at stream start)")
    parser.add_argument("--hogs", type=process_count, default=0, metavar="N",
                        help="CPU-bound processes at normal priority running through the whole bench (default: none)")
    parser.add_argument("--boost", choices=("on", "off", "both"), default="on",
                        help="lend realtime priority to the stream's other Python threads (default: %(default)s)")
    parser.add_argument("--status-line", action="store_true",
                        help="refresh the stream's stats every 50 ms from the main thread, as `rtconv live` does for "
                             "its status line (default: every 10 s)")
    parser.add_argument("--gil-load", type=unit_fraction, default=0.0, metavar="DUTY",
                        help="a Python thread holding the GIL this fraction of the time, e.g. 0.25 for a busy GUI (default: none)")


def _busy(stop: threading.Event, duty: float) -> None:
    """Hold the GIL in pure Python ``duty`` of the time, in 5 ms bursts (a GUI redrawing)."""
    x = 0
    while not stop.is_set():
        end = time.perf_counter() + 0.005
        while time.perf_counter() < end:
            x += 1
        if duty < 1:
            time.sleep(0.005 * (1 - duty) / duty)


def _noise(rate: int, seconds: int = 5) -> np.ndarray:
    """The soak's input: white noise at -26 dBFS RMS, looped by the player."""
    return (np.random.default_rng(0).standard_normal(rate * seconds) * 0.05).astype(np.float32)


def _baseline(server, args) -> dict:
    """The same duplex stream with a trivial Python callback: the dropouts the machine alone causes."""
    import sounddevice as sd

    from .jackd import Loopback

    n = {"xruns": 0, "blocks": 0}

    def cb(indata, outdata, frames, t, status):
        n["xruns"] += bool(status.input_overflow or status.output_underflow)
        n["blocks"] += 1
        outdata[:] = indata

    lb = Loopback(server, _noise(args.sample_rate, 1), 1.0, loop=True)
    api = next(i for i, h in enumerate(sd.query_hostapis()) if "JACK" in h["name"])
    dev = sd.query_hostapis(api)["default_input_device"]
    try:
        with sd.Stream(samplerate=args.sample_rate, blocksize=args.block_size, device=(dev, dev), channels=1,
                       dtype="float32", latency="low", callback=cb):
            lb.connect()
            lb.play()
            time.sleep(args.baseline)
    finally:
        lb.close()
    return n


def _player(server_name: str, rate: int) -> None:
    """Child process: loop noise into rtconv's inputs until stdin closes."""
    from types import SimpleNamespace

    from ..live.client import PORTS
    from .jackd import Loopback, wait_for

    lb = Loopback(SimpleNamespace(name=server_name, sample_rate=rate), _noise(rate), 1.0, loop=True)
    wait_for(lambda: len(lb.player.get_ports(PORTS, is_input=True, is_audio=True)) > 0, 20)
    lb.connect()
    lb.play()
    sys.stdin.read()
    lb.close()


def _connected(server) -> bool:
    """True once something feeds rtconv's first input (the player process has connected)."""
    import jack

    from ..live.client import PORTS

    c = jack.Client("rtc-probe", servername=server.name, no_start_server=True)
    try:
        ports = c.get_ports(PORTS, is_input=True, is_audio=True)
        return bool(ports) and any(p.name.startswith("rtc-player") for p in c.get_all_connections(ports[0]))
    finally:
        c.close()


def _measure(server, proc, args, boost=True):
    from ..live import LiveStream
    from .jackd import Loopback, wait_for

    rate = args.sample_rate
    # 1) round trip of an impulse, bypassed so the dry path (delayed by the reported latency) carries it
    imp = np.zeros(rate, np.float32)
    imp[rate // 4] = 0.5
    proc.set_controls(bypass=True)
    lb = Loopback(server, imp, 3.0)
    stream = LiveStream(proc, warn=None, switch_interval=args.switch_interval, freeze_gc=args.freeze_gc)
    try:
        with stream:
            lb.connect()
            time.sleep(0.3)
            lb.play()
            wait_for(lambda: lb.done, 10)
            time.sleep(0.5)
            s0 = stream.stats()
    finally:
        lb.close()
    got = int(np.argmax(np.abs(lb.captured[:, 0])))
    measured = got - (lb.play_start + rate // 4)
    # 2) the soak, wet, with noise playing
    proc.set_controls(bypass=False)
    # The noise source is a JACK client in its own process by default: a Python JACK
    # callback in this process would compete with rtconv's audio callback for the
    # interpreter lock, which a real microphone never does.
    lb = None if args.player == "process" else Loopback(server, _noise(rate), 1.0, loop=True)
    player = None
    stream = LiveStream(proc, warn=None, switch_interval=args.switch_interval, freeze_gc=args.freeze_gc,
                        boost_threads=boost)
    stop = threading.Event()
    if args.gil_load:
        threading.Thread(target=_busy, args=(stop, args.gil_load), daemon=True).start()
    try:
        with stream:
            if lb is None:
                player = subprocess.Popen(
                    [sys.executable, "-c", f"from rtconv.bench.live import _player; _player({server.name!r}, {rate})"],
                    stdin=subprocess.PIPE,
                )
                if not wait_for(lambda: _connected(server), 60):
                    from ..errors import DeviceError

                    raise DeviceError("the noise player did not connect to rtconv's input within 60 s; is the "
                                      "machine overloaded (--hogs)?")
            else:
                lb.connect()
                lb.play()
            # counted from here: the player's start (seconds of a Python import on a loaded machine) is not the soak
            before = stream.stats()
            base = {k: before[k] for k in ("dropouts", "input_overflows", "output_underflows", "blocks", "frames",
                                           "model_errors")}
            t0 = time.monotonic()
            next_report = 10
            while (el := time.monotonic() - t0) < args.seconds:
                if args.status_line:
                    time.sleep(0.05)
                    stream.stats()
                else:
                    time.sleep(0.5)
                if el >= next_report:
                    s = stream.stats()
                    print(f"  {el:5.0f} s  xruns {s['input_overflows'] - base['input_overflows']}/"
                          f"{s['output_underflows'] - base['output_underflows']}  "
                          f"p99 {s['block_ms']['p99']:.3f} ms", flush=True)
                    next_report += 10 if args.seconds <= 120 else 60
            s = stream.stats()
    finally:
        stop.set()
        if lb is not None:
            lb.close()
        if player is not None:
            player.stdin.close()  # the player exits when its stdin closes
            try:
                player.wait(10)
            except subprocess.TimeoutExpired:
                player.kill()
    for k, v in base.items():
        s[k] -= v
    s["seconds"] = s["frames"] / args.sample_rate
    s["boost"] = boost
    s["measured_latency_frames"] = measured
    s["reported_latency_frames_at_impulse"] = s0["latency_frames"]
    return s


def run(args) -> int:
    import os
    import tempfile

    from .. import checkpoint
    from .jackd import jack_available, jack_server

    why = jack_available()
    if why:
        print(f"rtconv bench live: cannot run: {why}")
        return 1
    path = checkpoint.resolve(args.model)
    model = checkpoint.load(path)
    boosts = (True, False) if args.boost == "both" else (args.boost == "on",)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(0, args.hogs))]
    rows: list = []
    log = os.path.join(tempfile.mkdtemp(prefix="rtconv-bench-"), "jackd.log")
    base = None
    try:
        with jack_server(args.sample_rate, args.period, name="rtconv-bench", log=log) as server:
            _runs(server, model, path, boosts, rows, log, args)
            base = rows.pop()[1] if rows and rows[-1][0] == "baseline" else None
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    _table(rows, base, log, args)
    return 0


def _runs(server, model, path, boosts, rows, log, args) -> None:
    from ..live import LiveProcessor, StreamSettings
    from .jackd import count_xruns

    base = None
    print(f"jackd dummy {args.sample_rate} Hz, period {args.period} ({'realtime' if server.realtime else 'no realtime'}); "
          f"model {path.name} ({model.sample_rate} Hz, resampler {args.resample_quality}); block {args.block_size}; {args.seconds:.0f} s per round"
          + (f"; a Python thread holds the GIL {args.gil_load:.0%} of the time" if args.gil_load else "")
          + (f"; {args.hogs} CPU-bound processes at normal priority" if args.hogs else ""), flush=True)
    if args.baseline:
        before = count_xruns(log)
        base = _baseline(server, args)
        base["server"] = _delta(before, count_xruns(log))
        print(f"  baseline pass-through: {base['blocks']} blocks, {base['xruns']} xruns; jackd: {count_xruns(log)}", flush=True)
    settings = StreamSettings(sample_rate=args.sample_rate, channels=1, block_size=args.block_size, hostapi="JACK",
                              resample_quality=args.resample_quality)
    for boost in boosts:
        proc = LiveProcessor(model, settings)
        before = count_xruns(log)
        s = _measure(server, proc, args, boost)
        s["server"] = _delta(before, count_xruns(log))
        rows.append(("callback", s))
        print(f"  after the round{'' if boost else ' (no boost)'}: jackd log so far: {count_xruns(log)}", flush=True)
    if base is not None:
        rows.append(("baseline", base))


def _delta(a: dict, b: dict) -> dict:
    """Server xruns between two :func:`count_xruns` readings: the driver's, rtconv's own, other clients'."""
    from ..live.client import PORTS
    import re

    late = {k: v - a["late_by"].get(k, 0) for k, v in b["late_by"].items()}
    ours = sum(v for k, v in late.items() if re.match(PORTS, k + ":"))
    return {"driver_late": b["driver_late"] - a["driver_late"], "rtconv_late": ours,
            "others_late": sum(late.values()) - ours}


def _table(rows, base, log, args) -> None:
    from .jackd import count_xruns

    rate = args.sample_rate
    print()
    print(f"{'mode':16} {'lent':>4} {'rtconv late':>11} {'others':>6} {'driver':>6} {'secs':>5} {'blocks':>8} {'overfl':>6} {'underfl':>7} {'err':>4} "
          f"{'med ms':>7} {'p99 ms':>7} {'max ms':>7} {'budget':>7} {'load':>5} {'rtconv lat':>10} {'PA device':>10} {'measured':>9}")
    for mode, s in rows:
        b, lat = s["block_ms"], s["latency"]
        label = mode + ("" if s.get("boost", True) else "-noboost")
        sv = s.get("server", {})
        print(f"{label:16} {s.get('threads_lent_realtime', 0):4d} {sv.get('rtconv_late', 0):11d} "
              f"{sv.get('others_late', 0):6d} {sv.get('driver_late', 0):6d} {s['seconds']:5.0f} {s['blocks']:8d} {s['input_overflows']:6d} "
              f"{s['output_underflows']:7d} {s['model_errors']:4d} {b['median']:7.3f} {b['p99']:7.3f} "
              f"{b['max']:7.3f} {b['budget']:7.3f} {s['cpu_load']:5.0%} "
              f"{s['reported_latency_frames_at_impulse'] / rate * 1e3:7.2f} ms {(lat['device_in_ms'] + lat['device_out_ms']):7.2f} ms "
              f"{s['measured_latency_frames'] / rate * 1e3:6.2f} ms")
    if base is not None:
        sv = base.get("server", {})
        print(f"{'baseline':16} {'':4} {sv.get('rtconv_late', 0):11d} {sv.get('others_late', 0):6d} "
              f"{sv.get('driver_late', 0):6d} {base['blocks'] * args.block_size / rate:5.0f} {base['blocks']:8d} {base['xruns']:6d} {base['xruns']:7d}"
              "   (pass-through Python callback, no model)")
    print(f"jackd log ({log}): {count_xruns(log)} (cumulative; driver_late = the dummy driver's timer woke late, "
          "client_late = a client did not finish its period)")
    print("\nrtconv late = periods in which rtconv's own client had not finished (the dropouts it caused); "
          "others = periods another client (the test's player or capture) had not finished; driver = the dummy "
          "driver's timer woke late (the machine); overfl/underfl = what PortAudio reported to rtconv, any of these.")
    print("lent = Python threads of the stream given the lowest realtime priority (--boost); "
          "rtconv lat = model + resampler as reported by stats; PA device = PortAudio's reported "
          "in+out latency (includes JACK's system-port latency, which a client-to-client loopback does not traverse); "
          "measured = impulse from a JACK client into PortAudio:in_0 until it leaves PortAudio:out_0.")
    return 0
