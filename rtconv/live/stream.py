"""The duplex sounddevice stream around a :class:`LiveProcessor`."""

from __future__ import annotations

import gc
import sys
import threading
from typing import Callable

import numpy as np

from ..errors import ConfigError, DeviceError
from . import realtime
from .devices import _sd, find_device, find_hostapi
from .recorder import Recorder
from .rings import FrameRing

__all__ = ["LiveStream", "MODES"]

MODES = ("callback", "worker")


def _stderr(msg: str) -> None:
    print(f"rtconv live: warning: {msg}", file=sys.stderr, flush=True)


def stream_format(processor, samplerate=None, channels=None) -> tuple[int, int]:
    """The stream's rate and channel count (the processor's by default); they must be the processor's."""
    rate, ch = int(samplerate or processor.samplerate), int(channels or processor.channels)
    if rate != processor.samplerate or ch != processor.channels:
        raise ConfigError(
            f"the stream runs {ch} channel(s) at {rate} Hz but the processor was "
            f"built for {processor.channels} at {processor.samplerate} Hz; build them alike."
        )
    return rate, ch


class LiveStream:
    """Microphone -> processor -> speakers, as a PortAudio duplex stream.

    Parameters
    ----------
    processor : LiveProcessor
        Does the audio work; its ``samplerate`` and ``channels`` must match.
    input_device, output_device : int or str, optional
        Index or name substring; default devices when None.
    hostapi : int or str, optional
        Restrict device lookup to one host API (e.g. ``"JACK"``).
    samplerate : int, optional
        Defaults to the processor's.
    block_size : int
        Frames per callback (the latency/CPU trade-off).
    channels : int
        Defaults to the processor's.
    output_channels : int, optional
        Channels opened on the output device.  Default: the processor's, but
        a mono stream plays on both channels of a stereo (or wider) output,
        so headphones get both ears; ``1`` keeps the left channel only.
        Recordings keep the processor's channels.
    record_dir : path, optional
        Record input and output there (see :class:`Recorder`).
    mode : {"callback", "worker"}
        Where the model runs: in the PortAudio callback (lowest latency), or
        in a worker thread behind ``safety_blocks`` blocks of buffering
        (absorbs jitter at the cost of that much latency).
    safety_blocks : int
        Worker mode only: blocks of output buffered ahead.  They must cover
        the host's own buffer (PortAudio delivers a JACK period of P frames
        as P/block_size back-to-back callbacks) plus the jitter to absorb.
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
        self, processor, input_device=None, output_device=None, hostapi=None, samplerate=None,
        block_size: int = 128, channels=None, record_dir=None, mode: str = "callback",
        output_channels: int | None = None,
        safety_blocks: int = 2, warn: Callable[[str], None] | None = _stderr,
        switch_interval: float | None = 0.0002,
        freeze_gc: bool = True,
        boost_threads: bool = True,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {mode!r}.")
        self.processor = processor
        self.samplerate, self.channels = stream_format(processor, samplerate, channels)
        if output_channels is not None and (isinstance(output_channels, bool) or not isinstance(output_channels, int)
                                            or output_channels < 1 or (self.channels > 1 and output_channels != self.channels)):
            raise ConfigError(
                f"output_channels must be {self.channels} for a {self.channels}-channel stream"
                + (" (or 2+ to play mono on several outputs)" if self.channels == 1 else "")
                + f", got {output_channels!r}.")
        self.requested_output_channels = output_channels
        self.output_channels = output_channels or self.channels
        self.block_size = int(block_size)
        self.hostapi = hostapi
        self.input_device, self.output_device = input_device, output_device
        self.record_dir = record_dir
        self.mode, self.safety_blocks = mode, int(safety_blocks)
        self.switch_interval = switch_interval
        self.freeze_gc = freeze_gc
        self.boost_threads = boost_threads
        self.audio_thread: tuple[int, int] | None = None  # (policy, priority) of the callback's thread
        self.boosted: list[tuple[int, tuple[int, int]]] = []  # (thread id, previous state) lent realtime
        self._probe = True
        self._caller = 0
        self.warn = warn
        self.stop_timeout = 5.0
        self.device_hung = False
        self.recorder: Recorder | None = None
        self.device_latency = (0.0, 0.0)
        self.callback_errors = 0
        self.worker_underruns = 0
        self._stream = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._wake = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    @property
    def active(self) -> bool:
        return self._stream is not None and bool(self._stream.active)

    @property
    def recording_paths(self) -> list:
        return [] if self.recorder is None else list(self.recorder.paths)

    def start(self) -> "LiveStream":
        sd = _sd()
        api = None if self.hostapi is None else find_hostapi(self.hostapi)
        ind = find_device(self.input_device, "input", api, self.channels)
        outd = find_device(self.output_device, "output", api, self.output_channels)
        names = {d["index"]: d["name"] for d in sd.query_devices()}
        if self.requested_output_channels is None and self.channels == 1:
            # mono on every channel of a stereo output (not only the left ear)
            self.output_channels = 2 if sd.query_devices(outd)["max_output_channels"] >= 2 else 1
        try:
            sd.check_input_settings(ind, channels=self.channels, samplerate=self.samplerate, dtype="float32")
            sd.check_output_settings(outd, channels=self.output_channels, samplerate=self.samplerate,
                                     dtype="float32")
        except Exception as e:
            dev = sd.query_devices(ind)
            raise DeviceError(
                f"devices {ind}: {names[ind]!r} / {outd}: {names[outd]!r} refuse {self.channels}"
                f"{'' if self.output_channels == self.channels else f' in / {self.output_channels} out'} channel(s) at "
                f"{self.samplerate} Hz ({e}); their default rate is {dev['default_samplerate']:.0f} Hz, "
                "try --samplerate with it or run `rtconv devices`."
            ) from None
        if self.mode == "worker":
            n = self.block_size
            self._in = FrameRing(n * (self.safety_blocks + 8), self.channels)
            self._outq = FrameRing(n * (self.safety_blocks + 8), self.channels)
            self._outq.write(np.zeros((n * self.safety_blocks, self.channels), np.float32))
            self.processor.buffering_latency = n * self.safety_blocks
            self._debt = 0
            self._scratch = np.zeros((n, self.channels), np.float32)
            self._outblk = np.zeros((n, self.channels), np.float32)
        else:
            self.processor.buffering_latency = 0
        if self.record_dir is not None:  # files exist before the first sample arrives
            self.recorder = Recorder(self.record_dir, self.samplerate, self.channels)
        try:
            self._stream = sd.Stream(
                samplerate=self.samplerate, blocksize=self.block_size, device=(ind, outd),
                channels=(self.channels, self.output_channels), dtype="float32", latency="low",
                callback=self._callback_worker if self.mode == "worker" else self._callback,
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
        if self.mode == "worker":
            self._spawn(self._work, "rtconv-worker")
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
        self._wake.set()
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
        s["mode"] = self.mode
        s["callback_errors"] = self.callback_errors
        s["worker_underruns"] = self.worker_underruns
        s["audio_thread_realtime"] = None if self.audio_thread is None else realtime.is_realtime(self.audio_thread)
        s["threads_lent_realtime"] = len(self.boosted)
        if self.mode == "worker":
            s["worker_input_drops"] = self._in.dropped
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

    def _callback_worker(self, indata, outdata, frames, time, status) -> None:
        try:
            self._status(status)
            self._in.write(indata)
            # After an underrun the worker's late blocks are skipped, so the
            # latency stays what was reported instead of growing by a block.
            while self._debt and self._outq.available >= frames + self._debt:
                k = min(self._debt, len(self._scratch))
                self._outq.read_into(self._scratch[:k])
                self._debt -= k
            out = self._outblk[:frames] if len(self._outblk) >= frames else np.zeros((frames, self.channels), np.float32)
            if not self._outq.read_into(out):
                out.fill(0)
                self.worker_underruns += 1
                self._debt += frames
            outdata[:] = out
            self._wake.set()
            rec = self.recorder
            if rec is not None:
                rec.push(indata, out)
        except Exception:  # pragma: no cover
            self.callback_errors += 1
            outdata.fill(0)

    # ------------------------------------------------------------------ helper threads
    def _work(self) -> None:
        n = self.block_size
        blk = np.zeros((n, self.channels), np.float32)
        while not self._stop.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            while self._in.available >= n:
                self._in.read_into(blk)
                self._outq.write(self.processor.process(blk))

    def _lend_realtime(self) -> None:
        """Once the callback ran: give this process's Python threads the lowest realtime priority if it has
        realtime (see :mod:`rtconv.live.realtime`), or say that it has not."""
        if self.audio_thread is None:
            return
        if not realtime.is_realtime(self.audio_thread):
            if self.warn is not None:
                self.warn(realtime.advice(self.block_size, self.samplerate))
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
