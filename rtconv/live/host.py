"""Run the live stream in a child process, so a GUI never delays the audio.

Why
    The audio callback is Python, so it needs the interpreter lock (GIL).
    Qt paints while holding the GIL (PyQt releases it only around calls
    marked as blocking), so a frame of pyqtgraph plots keeps the callback
    waiting for milliseconds, longer than a 128-frame block at 48 kHz
    lasts.  Measured with ``rtconv bench gui`` (30 s rounds, JACK dummy,
    default denoiser): 433 dropouts with the window open against 24
    without, all in-process.  In its own process the callback has its
    own GIL.

How
    :class:`AudioHost` starts one child (``spawn``: no inherited Qt or
    torch threads) that imports the engine at once, then serves commands
    over a pipe on its main thread: open a stream for a model and settings,
    set controls, swap models, report stats, stop.  What displays read
    every frame (display ring, meters, clip counters) lives in shared
    memory: :meth:`rtconv.live.LiveProcessor.share` on both sides, the child
    writing, the GUI reading; no pipe traffic per frame.

    :class:`RemoteStream` has :class:`rtconv.live.LiveStream`'s interface
    (``start``, ``stop``, ``active``, ``stats``, ``recording_paths``) around
    a processor built in the GUI's process, which stays the place where
    models are validated and controls are kept; the child runs its own
    copy.  ``push_controls`` forwards bypass, dry/wet, gain, limiter and a
    denoiser's attenuation limit; ``request_swap`` hot-swaps in both.

A child that dies is reported as a :class:`rtconv.errors.DeviceError` on
the next call; the GUI's process itself never plays audio.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from multiprocessing import shared_memory
from typing import Any, Callable

from ..errors import CheckpointError, ConfigError, DeviceError, RtconvError
from .stream import stream_format

__all__ = ["AudioHost", "RemoteStream"]

CONTROLS = ("bypass", "wet", "gain_db", "limiter", "gate", "gate_threshold", "gate_hold", "gate_release",
            "gate_floor_db")
MODEL_SWITCHES = ("attenuation_limit_db",)
_ERRORS = {c.__name__: c for c in (ConfigError, CheckpointError, DeviceError, RtconvError)}


class _Block(shared_memory.SharedMemory):
    """Shared memory that NumPy views may outlive: the mapping goes with the last of them."""

    def __del__(self) -> None:
        try:
            self.close()
        except BufferError:  # arrays still view it; only the descriptor can go now
            if getattr(self, "_fd", -1) >= 0:
                os.close(self._fd)
                self._fd = -1


# ---------------------------------------------------------------- child side
def _serve(conn) -> None:  # pragma: no cover - runs in the child (its effects are tested)
    """The child's main loop: one command at a time, the stream's callback on PortAudio's thread."""

    from .processor import LiveProcessor
    from .stream import LiveStream

    state: dict[str, Any] = {"proc": None, "stream": None, "shm": None, "warnings": []}

    def stop() -> None:
        st = state["stream"]
        if st is not None:
            state["stream"] = None
            st.stop()
            if st.device_hung:  # this process's PortAudio is stuck: leave; the next Start spawns a new one
                os._exit(3)
        state["proc"] = None

    def op_open(model, proc_kw: dict, controls: dict, stream_kw: dict, shm_name: str) -> dict:
        stop()
        import sounddevice as sd

        sd._terminate()  # see the devices as they are now (a JACK server started later)
        sd._initialize()
        proc = LiveProcessor(model, **proc_kw)
        for k, v in controls.items():
            setattr(proc, k, v)
        shm = _Block(name=shm_name)
        proc.share(shm.buf)
        stream = LiveStream(proc, warn=state["warnings"].append, **stream_kw)
        stream.start()
        state.update(proc=proc, stream=stream, shm=shm)
        return {"recording_paths": [str(p) for p in stream.recording_paths]}

    def op_set(controls: dict, switches: dict) -> None:
        proc = state["proc"]
        if proc is None:
            return
        for k, v in controls.items():
            setattr(proc, k, v)
        for k, v in switches.items():  # a model swapped in arrives with its own value
            if hasattr(type(proc.model), k):
                setattr(proc.model, k, v)

    def op_get(name: str):
        proc = state["proc"]
        if name == "model_name":
            return (getattr(proc.model, "metadata", None) or {}).get("name")
        if name in MODEL_SWITCHES:
            return getattr(proc.model, name, None)
        return getattr(proc, name)

    def op_stats() -> dict:
        st = state["stream"]
        if st is None:
            return {}
        s = st.stats()
        s["recording_paths"] = [str(p) for p in st.recording_paths]
        s["warnings"], state["warnings"][:] = list(state["warnings"]), []
        return s

    ops: dict[str, Callable] = {
        "open": op_open,
        "set": op_set,
        "get": op_get,
        "stats": op_stats,
        "swap": lambda model: state["proc"].request_swap(model),
        "wait_swapped": lambda timeout: state["proc"].wait_swapped(timeout),
        "stop": stop,
    }
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):  # the GUI's process went away
            break
        if op == "exit":
            break
        try:
            conn.send(("ok", ops[op](*args)))
        except Exception as e:  # noqa: BLE001 - every failure goes back as a sentence
            conn.send(("error", (type(e).__name__, str(e))))
    stop()
    try:
        import sounddevice as sd

        sd._terminate()  # before a JACK server can go away under it
    except Exception:  # noqa: BLE001
        pass


# ---------------------------------------------------------------- parent side
class AudioHost:
    """One child process that runs streams; start it early (``spawn`` takes a few seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None

    def start(self) -> "AudioHost":
        """Launch the child if it is not running (returns at once; it imports in the background)."""
        with self._lock:
            if self._proc is not None and self._proc.is_alive():
                return self
            ctx = mp.get_context("spawn")
            mine, theirs = ctx.Pipe()
            p = ctx.Process(target=_serve, args=(theirs,), name="rtconv-audio", daemon=True)
            p.start()
            theirs.close()
            self._proc, self._conn = p, mine
            return self

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def call(self, op: str, *args, timeout: float = 60.0):
        """Run ``op`` in the child; its exception comes back as the same rtconv error class.

        ``"open"`` starts a child if none runs; anything else on a child that
        died raises :class:`DeviceError` (its stream is gone with it).
        """
        if op == "open":
            self.start()
        elif not self.alive:
            self._proc = None
            raise DeviceError("the audio process stopped; start audio again.")
        with self._lock:
            try:
                self._conn.send((op, args))
                if not self._conn.poll(timeout):
                    raise DeviceError(f"the audio process did not answer {op!r} within {timeout:.0f} s.")
                status, value = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as e:
                self._proc = None
                raise DeviceError(f"the audio process stopped ({type(e).__name__}); start audio again.") from None
        if status == "ok":
            return value
        name, msg = value
        raise _ERRORS.get(name, DeviceError)(msg)

    def close(self, timeout: float = 5.0) -> None:
        """Stop any stream and end the child (idempotent)."""
        with self._lock:
            p, conn = self._proc, self._conn
            self._proc = self._conn = None
        if p is None:
            return
        try:
            conn.send(("exit", ()))
        except (OSError, BrokenPipeError):
            pass
        p.join(timeout)
        if p.is_alive():
            p.terminate()
            p.join(1)
        conn.close()


class RemoteStream:
    """:class:`rtconv.live.LiveStream`'s interface, the stream itself in ``host``'s child process.

    ``processor`` is the GUI's own :class:`rtconv.live.LiveProcessor`: its
    model and controls are sent over when the stream starts, and its display
    ring and meters are moved into shared memory that the child writes.
    """

    def __init__(self, processor, host: AudioHost, warn: Callable[[str], None] | None = None, **stream_kw) -> None:
        self.processor = processor
        self.host = host
        self.warn = warn
        self.samplerate, self.channels = stream_format(processor, stream_kw.get("samplerate"),
                                                       stream_kw.get("channels"))
        self.stream_kw = stream_kw
        self._open = False
        self._paths: list[str] = []
        self._last: dict = {}

    # lifecycle
    def start(self) -> "RemoteStream":
        proc = self.processor
        shm = _Block(create=True, size=proc.shared_nbytes)
        try:
            proc.share(shm.buf)
            proc._host_shm = shm  # keeps the mapping alive as long as the processor reads it
            kw = dict(samplerate=proc.samplerate, channels=proc.channels, block_size=proc.block_size,
                      threads=proc.threads, crossfade_ms=proc.crossfade_ms,
                      resample_quality=proc.resample_quality, realtime_check=False, vad=proc.vad_path)
            info = self.host.call("open", proc.model, kw, self.controls(), self.stream_kw, shm.name)
        finally:
            shm.unlink()  # both processes have it mapped; the name is no longer needed
        self._open = True
        self._paths = info["recording_paths"]
        self.push_controls()  # a denoiser's attenuation limit
        return self

    def stop(self) -> None:
        if not self._open:
            return
        self._open = False
        self._paths = []
        if not self.host.alive:  # gone with its process; already reported by the call that found out
            return
        self._last = self.host.call("stats")
        self.host.call("stop")

    close = stop

    def __enter__(self) -> "RemoteStream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def active(self) -> bool:
        return self._open and bool(self.host.alive)

    @property
    def recording_paths(self) -> list:
        return list(self._paths)

    # controls and models
    def controls(self) -> dict:
        return {k: getattr(self.processor, k) for k in CONTROLS}

    def push_controls(self) -> None:
        """Send the processor's controls and the model's switches to the playing copy."""
        if not self._open:
            return
        model = self.processor.model
        switches = {k: getattr(model, k) for k in MODEL_SWITCHES if hasattr(type(model), k)}
        self.host.call("set", self.controls(), switches)

    def request_swap(self, model) -> None:
        """Hot-swap ``model`` in the child (the processor here has validated it)."""
        if self._open:
            self.host.call("swap", model)

    def wait_swapped(self, timeout: float = 5.0) -> bool:
        return bool(self.host.call("wait_swapped", timeout, timeout=timeout + 10)) if self._open else True

    def remote(self, name: str):
        """A control's value as the playing copy has it (for checks and tests)."""
        return self.host.call("get", name)

    def stats(self) -> dict:
        """The child's stream stats (the last ones, once stopped); new warnings go to ``warn``."""
        if not self._open:
            return dict(self._last)
        s = self.host.call("stats")
        for w in s.pop("warnings", []):
            if self.warn is not None:
                self.warn(w)
        self._paths = s.get("recording_paths", self._paths)
        self._last = s
        return s
