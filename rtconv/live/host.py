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
    over a pipe on its main thread.  :class:`RemoteSession` is a
    :class:`rtconv.live.session.Session` whose stream plays there: the child
    runs a :class:`~rtconv.live.session.LocalSession` built from the same
    data the CLI uses (a checkpoint path plus switches, one
    :class:`~rtconv.live.settings.StreamSettings`, a dict of controls); no
    model object crosses the pipe.  What displays read every frame lives in
    shared memory: the child's :class:`~rtconv.live.monitor.Monitor`
    writes it, :meth:`Monitor.attach` reads it here; no pipe traffic per
    frame.

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
from .monitor import Monitor
from .session import Session
from .settings import StreamSettings

__all__ = ["AudioHost", "RemoteSession"]

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
    import signal

    # A terminal's Ctrl-C reaches the whole process group: the window stops the stream (finalizing its
    # recording) and then this process; dying here first would cut the recording and leave the window mute.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .session import LocalSession

    state: dict[str, Any] = {"session": None, "shm": None, "warnings": []}

    def stop() -> None:
        session, state["session"] = state["session"], None
        if session is not None:
            session.stop()
            if session.device_hung:  # this process's PortAudio is stuck: leave; the next Start spawns a new one
                os._exit(3)

    def op_open(model: str, switches: dict, settings: StreamSettings, vad, controls: dict, shm_name: str) -> None:
        stop()
        import sounddevice as sd

        sd._terminate()  # see the devices as they are now (a JACK server started later)
        sd._initialize()
        session = LocalSession(model, settings, switches=switches, vad=vad, controls=controls,
                               warn=state["warnings"].append)
        shm = _Block(name=shm_name)
        session.monitor.share(shm.buf)
        session.start()
        state.update(session=session, shm=shm)

    def op_stats() -> dict:
        session = state["session"]
        if session is None:
            return {}
        s = session.stats()
        s["warnings"], state["warnings"][:] = list(state["warnings"]), []
        return s

    def on_session(name: str):
        def call(*args):
            session = state["session"]
            if session is None:
                raise DeviceError("no stream runs in the audio process; start audio first.")
            return getattr(session, name)(*args)
        return call

    ops: dict[str, Callable] = {"open": op_open, "stats": op_stats, "stop": stop}
    ops.update({name: on_session(name) for name in ("swap", "wait_swapped", "watch")})

    def op_set(controls: dict, switches: dict) -> None:
        session = state["session"]
        if session is not None:
            session.set_controls(**controls)
            session.set_switches(**switches)

    ops["set"] = op_set
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


class RemoteSession(Session):
    """A :class:`rtconv.live.session.Session` whose stream plays in ``host``'s audio process.

    Parameters
    ----------
    host : AudioHost
    model : path
        The checkpoint to play (a path or a name in ``models/``).
    settings : StreamSettings
    switches, vad, controls
        As for :class:`rtconv.live.session.LocalSession`.
    warn : callable, optional
        Receives the child's warning sentences (collected by :meth:`stats`).
    """

    def __init__(self, host: AudioHost, model, settings: StreamSettings, *, switches=None, vad=None,
                 controls=None, warn: Callable[[str], None] | None = None) -> None:
        if not isinstance(model, (str, os.PathLike)):
            raise ConfigError(f"a model reaches the audio process as a checkpoint path, got {type(model).__name__}; "
                              "save it with rtconv.save first.")
        if not isinstance(settings, StreamSettings):
            raise ConfigError(f"settings must be a StreamSettings, got {type(settings).__name__}.")
        self.host = host
        self.settings = settings
        self._model, self._switches = os.fspath(model), dict(switches or {})
        self._vad = None if vad is None else os.fspath(vad)
        self._controls = dict(controls or {})
        self.warn = warn
        self._open = False
        self._paths: list[str] = []
        self._last: dict = {}
        self._monitor = Monitor(settings.sample_rate, settings.channels)

    # lifecycle
    def start(self) -> "RemoteSession":
        shm = _Block(create=True, size=self._monitor.nbytes)
        try:
            monitor = Monitor.attach(shm.buf, self.settings.sample_rate, self.settings.channels, owner=shm)
            self.host.call("open", self._model, self._switches, self.settings, self._vad, self._controls, shm.name)
        finally:
            shm.unlink()  # both processes have it mapped; the name is no longer needed
        self._monitor = monitor
        self._open = True
        self.stats()
        return self

    def stop(self) -> None:
        if not self._open:
            return
        self._open = False
        if not self.host.alive:  # gone with its process; already reported by the call that found out
            return
        self._last = self.host.call("stats")
        self.host.call("stop")

    @property
    def active(self) -> bool:
        return self._open and bool(self.host.alive)

    @property
    def monitor(self) -> Monitor:
        return self._monitor

    @property
    def recording_paths(self) -> list:
        return list(self._paths) if self._open else []

    # controls and models
    def set_controls(self, **controls) -> None:
        self._controls.update(controls)
        if self._open:
            self.host.call("set", controls, {})

    def set_switches(self, **switches) -> None:
        self._switches.update(switches)
        if self._open:
            self.host.call("set", {}, switches)

    def swap(self, model, switches=None) -> None:
        """Crossfade to checkpoint ``model`` there; refused in one sentence, the old one keeps playing."""
        if self._open:
            self.host.call("swap", os.fspath(model), dict(switches or {}))
        self._model, self._switches = os.fspath(model), dict(switches or {})

    def wait_swapped(self, timeout: float = 5.0) -> bool:
        return bool(self.host.call("wait_swapped", timeout, timeout=timeout + 10)) if self._open else True

    def watch(self, path) -> None:
        if self._open:
            self.host.call("watch", None if path is None else os.fspath(path))

    def stats(self) -> dict:
        """The child's session stats (the last ones, once stopped); new warnings go to ``warn``."""
        if not self._open:
            return dict(self._last)
        s = self.host.call("stats")
        for w in s.pop("warnings", []):
            if self.warn is not None:
                self.warn(w)
        self._paths = s.get("recording_paths", self._paths)
        self._last = s
        return s
