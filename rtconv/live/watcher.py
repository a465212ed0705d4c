"""Train-then-deploy: swap a checkpoint into a running session when the trainer rewrites it.

The one reload mechanism of the CLI (``rtconv live --watch``) and the GUI
(its "watch" box): a :class:`rtconv.live.session.LocalSession` runs it, in
the GUI's audio process too.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

from ..errors import RtconvError

__all__ = ["ModelWatcher"]


class ModelWatcher:
    """Poll ``path`` and call ``swap(path)`` for each complete new version.

    A version counts as complete when its size and modification time have
    stayed the same for two polls and the file loads; a half-written or
    invalid file is reported once and retried when it changes again.

    Parameters
    ----------
    path : path
        The checkpoint the trainer writes.
    swap : callable
        Swaps a checkpoint path in; raises :class:`rtconv.RtconvError` to refuse it.
    interval : float
        Seconds between polls.
    on_event : callable, optional
        Receives one sentence per swap or rejected version, and ``swapped``
        (True for a swap) as a keyword (default: print the sentence).
    """

    def __init__(self, path, swap: Callable[[str], None], interval: float = 0.5,
                 on_event: Callable[..., None] | None = None) -> None:
        self.path = os.fspath(path)
        self.swap = swap
        self.interval = interval
        self.on_event = on_event or (lambda m, swapped=False: print(f"rtconv live: {m}", flush=True))
        self.swaps = 0
        self.rejected = 0
        self._seen = self._sig()  # the version running now is not "new"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sig(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def poll(self) -> bool:
        """One check; returns True if a new version was swapped in."""
        sig = self._sig()
        if sig is None or sig == self._seen:
            return False
        if getattr(self, "_candidate", None) != sig:
            self._candidate = sig  # wait one more poll: the trainer may still be writing
            return False
        self._seen = sig
        try:
            self.swap(self.path)
        except RtconvError as e:
            self.rejected += 1
            self.on_event(str(e))
            return False
        self.swaps += 1
        self.on_event(f"swapped in the new version of {self.path!r}.", swapped=True)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def start(self) -> "ModelWatcher":
        self._thread = threading.Thread(target=self._loop, name="rtconv-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "ModelWatcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
