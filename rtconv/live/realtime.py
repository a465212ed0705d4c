"""Realtime scheduling for the live path: what the audio thread has, and lending it to the helpers.

Why
    The audio callback is Python, so it needs the interpreter lock (GIL).
    When the sound server runs its clients with realtime scheduling (JACK
    ``-R``, PipeWire through rtkit), CPU-bound programs cannot preempt the
    callback, but they can preempt *another thread of this process* while it
    holds the GIL: the status line, the warnings monitor, the recording
    writer.  The callback then waits for a thread that is not running, for
    as long as the kernel gives the CPU to the other programs (priority
    inversion), and the block is late.  CPython's GIL has no priority
    inheritance, so it is done by hand: every Python thread of a running
    stream takes the lowest realtime priority (SCHED_FIFO 1), below the
    callback's, so it still yields to the callback but not to other
    programs; the stream gives the threads their old policy back when it
    stops.

What it cannot do
    Without permission for realtime scheduling (no rtkit grant, no
    ``rtprio`` in /etc/security/limits.conf) nothing changes, and
    :func:`advice` says what the user can do.
"""

from __future__ import annotations

import os
import sys

__all__ = ["current", "is_realtime", "boost", "restore", "advice", "HELPER_PRIORITY"]

#: The realtime priority helper threads take: the lowest, below any audio thread's.
HELPER_PRIORITY = 1
_RT = tuple(getattr(os, n) for n in ("SCHED_FIFO", "SCHED_RR") if hasattr(os, n))


def current() -> tuple[int, int] | None:
    """The calling thread's (policy, priority), or None where the OS has no such call."""
    if not hasattr(os, "sched_getscheduler"):
        return None
    try:
        return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority
    except OSError:
        return None


def is_realtime(state: tuple[int, int] | None) -> bool:
    return state is not None and state[0] in _RT


def boost(tid: int = 0, priority: int = HELPER_PRIORITY) -> tuple[int, int] | None:
    """Give thread ``tid`` (a native thread id; 0: the calling one) SCHED_FIFO ``priority``.

    Returns its previous (policy, priority), or None when it already was
    realtime or the system does not allow it.  On Linux a thread id names
    one thread, so any thread can boost any other of the process.
    """
    if not hasattr(os, "sched_getscheduler") or not _RT:
        return None
    try:
        before = os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority
        if before[0] in _RT:
            return None
        os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return None
    return before


def restore(before: tuple[int, int] | None, tid: int = 0) -> None:
    """Undo :func:`boost` on thread ``tid`` (``before`` as it returned)."""
    if before is None:
        return
    try:
        os.sched_setscheduler(tid, before[0], os.sched_param(before[1]))
    except (OSError, AttributeError):
        pass


def advice(block_size: int, sample_rate: int, hostapi: str | None = None) -> str:
    """One sentence for a stream whose audio thread has no realtime scheduling.

    ``hostapi`` is the stream's host API name: on JACK the audio thread is
    the JACK server's client thread, realtime only when jackd runs with
    ``-R``; elsewhere it is PortAudio's (ALSA) or the sound server's, which
    rtkit or the user's rtprio limit make realtime.
    """
    jack = hostapi is not None and "jack" in hostapi.lower()
    limits = ("'@audio - rtprio 95' and '@audio - memlock unlimited' in /etc/security/limits.conf, then join "
              "the audio group and log in again")
    if not sys.platform.startswith("linux"):
        where = "run the sound server with realtime scheduling"
    elif jack:
        where = f"start jackd with -R (realtime), and let your user have realtime: {limits}"
    else:
        where = f"install rtkit (PipeWire and PulseAudio ask it for realtime), or let your user have it: {limits}"
    return (f"the audio thread runs without realtime scheduling, so other programs can delay it and cause "
            f"dropouts; {where}; or use a larger block than {block_size} frames "
            f"({block_size / sample_rate * 1e3:.1f} ms).")
