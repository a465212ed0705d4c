"""The duplex sounddevice stream around a :class:`LiveProcessor`."""

from __future__ import annotations

import gc
import sys
import threading
from typing import Callable

from ..errors import DeviceError
from . import realtime
from .devices import _sd, find_device, find_hostapi
from .recorder import Recorder

__all__ = ["LiveStream"]


def _stderr(msg: str) -> None:
    print(f"rtconv live: warning: {msg}", file=sys.stderr, flush=True)


class LiveStream:
    """Microphone -> processor -> speakers, as a PortAudio duplex stream.

    The devices, rate, channels, block size and recording folder are the
    processor's :class:`~rtconv.live.settings.StreamSettings`; the model runs
    in the PortAudio callback (a worker thread behind a buffer was measured
    worse in CPython, see :mod:`rtconv.live`).

    Parameters
    ----------
    processor : LiveProcessor
        Does the audio work.
    warn : callable
        Receives warning sentences from the monitor thread (default: stderr).
    switch_interval : float or None
        ``sys.setswitchinterval`` while the stream runs, seconds (restored at
        stop; None leaves it).  Another busy Python thread keeps the GIL up
        to this long each time the callback asks for it back, and torch and
        NumPy release it several times per block, so the default 5 ms is a
        dropout at 128-frame blocks (0.2 ms cut dropouts under a 25%
        GIL load by 40% against 1 ms in `rtconv bench live --gil-load 0.25`).
    freeze_gc : bool
        ``gc.freeze()`` at start: the objects alive then (torch, the model)
        leave the collector's view, so a collection that happens to run in
        the callback walks only new objects instead of every object torch
        made (tens of milliseconds).
    boost_threads : bool
        When the callback runs with realtime scheduling, lend the lowest
        realtime priority to this process's other Python threads of the
        stream (the caller of :meth:`start`, the monitor, the recording
        writer, the worker) until :meth:`stop`, so a CPU-bound program cannot
        preempt one of them while it holds the interpreter lock the callback
        waits for (:mod:`rtconv.live.realtime`).  Without realtime, a warning
        says what the user can do.
    """

    def __init__(
        self, processor, warn: Callable[[str], None] | None = _stderr,
        switch_interval: float | None = 0.0002,
        freeze_gc: bool = True,
        boost_threads: bool = True,
    ) -> None:
        self.processor = processor
        self.settings = processor.settings
        self.output_channels = self.settings.output_channels or self.settings.channels
        self.switch_interval = switch_interval
        self.freeze_gc = freeze_gc
        self.boost_threads = boost_threads
        self.audio_thread: tuple[int, int] | None = None  # (policy, priority) of the callback's thread
        self.boosted: list[tuple[int, tuple[int, int]]] = []  # (thread id, previous state) lent realtime
        self._probe = True
        self._caller = 0
        self.warn = warn
        self.hostapi_name: str | None = None  # the opened stream's host API (set by start)
        self.stop_timeout = 5.0
        self.device_hung = False
        self.recorder: Recorder | None = None
        self.device_latency = (0.0, 0.0)
        self.callback_errors = 0
        self._stream = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    @property
    def active(self) -> bool:
        return self._stream is not None and bool(self._stream.active)

    @property
    def recording_paths(self) -> list:
        return [] if self.recorder is None else list(self.recorder.paths)

    def start(self) -> "LiveStream":
        sd = _sd()
        st = self.settings
        api = None if st.hostapi is None else find_hostapi(st.hostapi)
        ind = find_device(st.input_device, "input", api, st.channels)
        outd = find_device(st.output_device, "output", api, self.output_channels)
        names = {d["index"]: d["name"] for d in sd.query_devices()}
        self.hostapi_name = sd.query_hostapis(sd.query_devices(ind)["hostapi"])["name"]  # what runs the callback
        if st.output_channels is None and st.channels == 1:
            # mono on every channel of a stereo output (not only the left ear)
            self.output_channels = 2 if sd.query_devices(outd)["max_output_channels"] >= 2 else 1

        def check(rate):
            sd.check_input_settings(ind, channels=st.channels, samplerate=rate, dtype="float32")
            sd.check_output_settings(outd, channels=self.output_channels, samplerate=rate, dtype="float32")

        try:
            check(st.sample_rate)
        except Exception as e:
            dev = sd.query_devices(ind)
            default = int(dev["default_samplerate"])
            pair = f"devices {ind}: {names[ind]!r} / {outd}: {names[outd]!r}"
            try:  # the rate or the channels: the channels at the device's own rate tell which
                check(default)
                channels_ok = True
            except Exception:
                channels_ok = False
            if channels_ok and default != st.sample_rate:
                raise DeviceError(
                    f"{pair} do not run at {st.sample_rate} Hz ({e}); they run at {default} Hz, "
                    "try --sample-rate with it."
                ) from None
            raise DeviceError(
                f"{pair} refuse {st.channels}"
                f"{'' if self.output_channels == st.channels else f' in / {self.output_channels} out'} channel(s) at "
                f"{st.sample_rate} Hz ({e}); they have {dev['max_input_channels']} in / "
                f"{sd.query_devices(outd)['max_output_channels']} out: set --channels to fit, or run `rtconv devices`."
            ) from None
        if st.record_dir is not None:  # files exist before the first sample arrives
            self.recorder = Recorder(st.record_dir, st.sample_rate, st.channels)
        try:
            self._stream = sd.Stream(
                samplerate=st.sample_rate, blocksize=st.block_size, device=(ind, outd),
                channels=(st.channels, self.output_channels), dtype="float32", latency=st.device_latency,
                callback=self._callback,
            )
        except Exception as e:
            self._close_recorder()
            raise DeviceError(f"cannot open devices {ind}: {names[ind]!r} / {outd}: {names[outd]!r} ({e}); run `rtconv devices` to list them.") from None
        self._caller = threading.get_native_id()  # the thread that runs the stream (a CLI's status line)
        self._probe = True
        self.device_latency = tuple(float(x) for x in self._stream.latency)
        self.processor.device_latency = self.device_latency
        self._stop.clear()
        if self.freeze_gc:
            gc.collect()
            gc.freeze()
        if self.switch_interval is not None:  # see the class docstring (process-wide)
            self._switch = sys.getswitchinterval()
            sys.setswitchinterval(self.switch_interval)
        self._spawn(self._monitor, "rtconv-monitor")
        self._stream.start()
        return self

    def _spawn(self, fn, name) -> None:
        t = threading.Thread(target=fn, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Stop the stream, then finalize recordings (nothing recorded is lost).

        PortAudio's stop and close run on a helper thread and get
        :attr:`stop_timeout` seconds: its JACK host API waits for one more
        process callback, up to ten minutes if the server has dropped the
        client.  Past that the device is left to itself, :attr:`device_hung`
        is set and a warning says so; the recordings are finalized either way.
        A process whose device hung should leave with ``os._exit`` (PortAudio's
        own exit handler would wait on the same device).
        """
        if self._stream is not None:
            stream, self._stream = self._stream, None
            failure: list[BaseException] = []

            def _close() -> None:
                try:
                    stream.stop()
                    stream.close()
                except BaseException as e:  # noqa: BLE001 - reported below, recordings still finalized
                    failure.append(e)

            t = threading.Thread(target=_close, name="rtconv-device-stop", daemon=True)
            t.start()
            t.join(self.stop_timeout)
            if t.is_alive():
                self.device_hung = True
                if self.warn:
                    self.warn(f"the audio device did not stop within {self.stop_timeout:g} s (PortAudio is stuck in "
                              "the host API); the recordings are finalized anyway.")
            elif failure and self.warn:
                self.warn(f"stopping the audio device failed ({failure[0]}); the recordings are finalized anyway.")
        self._stop.set()
        for t in self._threads:
            t.join()
        self._threads.clear()
        for tid, before in self.boosted:  # the helpers' own scheduling back
            realtime.restore(before, tid)
        self.boosted = []
        if hasattr(self, "_switch"):
            sys.setswitchinterval(self._switch)
            del self._switch
        if self.freeze_gc:
            gc.unfreeze()  # frozen objects are never freed, not even at exit
        self._close_recorder()

    def _close_recorder(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            if self.recorder.error and self.warn:
                self.warn(self.recorder.error)

    def __enter__(self) -> "LiveStream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stats(self) -> dict:
        """The processor's stats plus stream-level counters."""
        s = self.processor.stats()
        s["callback_errors"] = self.callback_errors
        s["audio_thread_realtime"] = None if self.audio_thread is None else realtime.is_realtime(self.audio_thread)
        s["threads_lent_realtime"] = len(self.boosted)
        if self.recorder is not None:
            s["recording"] = {"paths": [str(p) for p in self.recorder.paths], "frames": self.recorder.frames_written,
                              "dropped": self.recorder.dropped, "error": self.recorder.error}
        return s

    # ------------------------------------------------------------------ audio thread
    def _status(self, status) -> None:
        if self._probe:  # once: how the server schedules this thread
            self._probe = False
            self.audio_thread = realtime.current()
        if status:
            self.processor.note_status(status.input_overflow, status.output_underflow)

    def _callback(self, indata, outdata, frames, time, status) -> None:
        try:
            self._status(status)
            out = self.processor.process(indata)
            outdata[:] = out  # (n, 1) fills every output channel
            rec = self.recorder
            if rec is not None:
                rec.push(indata, out)
        except Exception:  # pragma: no cover - never let the callback die
            self.callback_errors += 1
            outdata.fill(0)

    def _lend_realtime(self) -> None:
        """Once the callback ran: give this process's Python threads the lowest realtime priority if it has
        realtime (see :mod:`rtconv.live.realtime`), or say that it has not."""
        if self.audio_thread is None:
            return
        if not realtime.is_realtime(self.audio_thread):
            if self.warn is not None:
                self.warn(realtime.advice(self.settings.block_size, self.settings.sample_rate, self.hostapi_name))
            return
        if not self.boost_threads:
            return
        tids = [self._caller, threading.get_native_id()]
        tids += [t.native_id for t in self._threads if t.native_id]
        rec = self.recorder
        if rec is not None and getattr(rec, "_thread", None) is not None and rec._thread.native_id:
            tids.append(rec._thread.native_id)
        for tid in dict.fromkeys(tids):
            before = realtime.boost(tid)
            if before is not None:
                self.boosted.append((tid, before))

    def _monitor(self) -> None:
        rec_warned = False
        lent = False
        while not self._stop.wait(0.2):
            if not lent and self.audio_thread is not None:
                lent = True
                self._lend_realtime()
            if self.warn is None:
                continue
            for msg in self.processor.poll_warnings():
                self.warn(msg)
            rec = self.recorder
            if rec is not None and rec.error and not rec_warned:
                self.warn(rec.error)
                rec_warned = True
