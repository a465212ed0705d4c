"""A live session: one running stream seen through one interface, wherever it plays.

Both the CLI and the GUI hold a :class:`Session` and nothing below it:

* :class:`LocalSession` plays in this process: a
  :class:`~rtconv.live.processor.LiveProcessor` in a
  :class:`~rtconv.live.stream.LiveStream`, with a
  :class:`~rtconv.live.watcher.ModelWatcher` for train-then-deploy;
* :class:`rtconv.live.host.RemoteSession` plays in the GUI's audio process
  (its own interpreter lock, so painting never delays the audio) by running
  a :class:`LocalSession` there.

A model crosses into a session as a checkpoint path plus switches (the
trainer's contract), settings as one :class:`StreamSettings`, controls as a
dict of :data:`~rtconv.live.processor.CONTROLS`.  What displays read is the
session's :class:`~rtconv.live.monitor.Monitor`.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Protocol

from .monitor import Monitor
from .settings import StreamSettings

__all__ = ["Session", "LocalSession"]


class Session(Protocol):
    """What a running stream offers its user (the CLI, the GUI, a bench).

    Sessions subclass it for ``close`` and the context manager (``with session: ...``).
    """

    settings: StreamSettings

    def start(self) -> "Session":
        """Open the devices and play; raises :class:`rtconv.RtconvError` with one sentence."""

    def stop(self) -> None:
        """Stop playing and finalize the recordings (idempotent)."""

    def close(self) -> None:
        self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def active(self) -> bool: ...

    @property
    def monitor(self) -> Monitor:
        """Meters, display ring, voice state: what displays read every frame."""

    @property
    def recording_paths(self) -> list: ...

    def set_controls(self, **controls) -> None:
        """Bypass, dry/wet, gain, limiter, gate settings (:data:`rtconv.live.processor.CONTROLS`)."""

    def set_switches(self, **switches) -> None:
        """The playing model's switches (a denoiser's ``attenuation_limit_db``)."""

    def swap(self, model, switches=None) -> None:
        """Crossfade to the checkpoint ``model`` (path or name); refused in one sentence, the old one playing."""

    def wait_swapped(self, timeout: float = 5.0) -> bool: ...

    def watch(self, path) -> None:
        """Swap in ``path`` again whenever it is rewritten (None: stop watching)."""

    def stats(self) -> dict[str, Any]:
        """Counters, block times, latency breakdown, the model, controls and new events."""


class LocalSession(Session):
    """A session that plays in this process.

    Parameters
    ----------
    model : path, name or rtconv.models.Model
        What to play (a path or a name in ``models/`` is resolved and loaded).
    settings : StreamSettings
    switches : mapping, optional
        Model switches (``attenuation_limit_db``, ``linked``).
    vad : path, optional
        Voice-activity model for the meter and the speech gate.
    controls : mapping, optional
        Initial controls.
    warn : callable, optional
        Receives warning sentences from the stream's monitor thread.
    on_event : callable, optional
        Receives a sentence per watched version swapped in or refused
        (default: kept for :meth:`stats` under ``"events"``).
    realtime_check : bool
        Refuse a model too slow for the block (see :class:`ModelChain`).
    stream_kw
        Passed to :class:`LiveStream` (``boost_threads``, ``switch_interval``...).

    The processor is built here, so a model that cannot play is refused
    before any device opens.
    """

    def __init__(self, model, settings: StreamSettings, *, switches=None, vad=None, controls=None,
                 warn: Callable[[str], None] | None = None, on_event: Callable[[str], None] | None = None,
                 realtime_check: bool = True, **stream_kw) -> None:
        from .processor import LiveProcessor

        self.settings = settings
        self.processor = LiveProcessor(model, settings, switches=switches, vad=vad, realtime_check=realtime_check)
        if controls:
            self.processor.set_controls(**controls)
        self._warn = warn
        self._stream_kw = stream_kw
        self._stream = None
        self._watcher = None
        self._events: list[dict] = []
        self._on_event = on_event
        self._lock = threading.Lock()
        self.model_path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None

    # lifecycle
    def start(self) -> "LocalSession":
        from .stream import LiveStream

        kw = dict(self._stream_kw)
        if self._warn is not None:
            kw["warn"] = self._warn
        stream = LiveStream(self.processor, **kw)
        stream.start()
        self._stream = stream
        return self

    def stop(self) -> None:
        self.watch(None)
        if self._stream is not None:
            self._stream.stop()

    @property
    def active(self) -> bool:
        return self._stream is not None and self._stream.active

    @property
    def device_hung(self) -> bool:
        """PortAudio did not stop (see :meth:`LiveStream.stop`): leave the process with ``os._exit``."""
        return self._stream is not None and self._stream.device_hung

    @property
    def monitor(self) -> Monitor:
        return self.processor.monitor

    @property
    def recording_paths(self) -> list:
        return [] if self._stream is None else self._stream.recording_paths

    # controls and models
    def set_controls(self, **controls) -> None:
        self.processor.set_controls(**controls)

    def set_switches(self, **switches) -> None:
        self.processor.set_switches(**switches)

    def swap(self, model, switches=None) -> None:
        self.processor.request_swap(model, switches)
        self.model_path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None

    def wait_swapped(self, timeout: float = 5.0) -> bool:
        return self.processor.wait_swapped(timeout)

    def watch(self, path) -> None:
        from .watcher import ModelWatcher

        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        if path is not None:
            self._watcher = ModelWatcher(path, self._watched, on_event=self._event).start()

    def _watched(self, path) -> None:
        self.processor.request_swap(path, self.processor.switches)  # the user's strength stays
        self.model_path = os.fspath(path)

    def _event(self, message: str, swapped: bool = False) -> None:
        if self._on_event is not None:
            self._on_event(message)
            return
        with self._lock:
            self._events.append({"message": message, "swapped": swapped, "path": self.model_path})

    def stats(self) -> dict[str, Any]:
        s = self._stream.stats() if self._stream is not None else self.processor.stats()
        p = self.processor
        s["model"] = self.model_path
        s["model_name"] = (getattr(p.model, "metadata", None) or {}).get("name")
        s["controls"] = p.controls()
        s["switches"] = p.switches
        s["recording_paths"] = [str(x) for x in self.recording_paths]
        with self._lock:
            s["events"], self._events = self._events, []
        return s
