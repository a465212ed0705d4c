"""How rtconv appears to a sound server: its JACK (and PipeWire-JACK) client name.

PortAudio names its JACK client "PortAudio" unless ``PaJack_SetClientName``
is called before ``Pa_Initialize``; sounddevice does not wrap that call, so
it is made through ctypes on the library sounddevice loaded, and PortAudio
is re-initialised once so the name takes effect.  Patchbays (qjackctl,
Carla, Helvum, pw-link) then list "rtconv", which is what users look for
when they wire the cleaned microphone into another program.

:func:`connect_outputs` does that wiring (``rtconv live --connect``) with
JACK's own ``jack_lsp`` and ``jack_connect``.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import time

from ..errors import DeviceError

__all__ = ["CLIENT_NAME", "PORTS", "name_client", "jack_clients", "connect_outputs"]

#: The client name rtconv asks PortAudio's JACK host API to use.
CLIENT_NAME = "rtconv"
#: A JACK port regex for rtconv's ports (a second client in one server is "rtconv-01").
PORTS = f"^{CLIENT_NAME}(-[0-9]+)?:"

# PortAudio keeps the pointer, not a copy: the buffer must live as long as the process.
_name_buffer = ctypes.create_string_buffer(CLIENT_NAME.encode())
_named: bool | None = None  # None: not tried yet; then whether it took


def name_client(sd) -> bool:
    """Give PortAudio's JACK client the name :data:`CLIENT_NAME`; return whether it took.

    Call with the imported ``sounddevice`` module before any stream opens
    (it re-initialises PortAudio); it is tried once per process, so later
    calls, with streams open, never re-initialise it.  A PortAudio built
    without JACK has no such function and keeps its defaults.
    """
    global _named
    if _named is not None:
        return _named
    _named = False
    try:
        setter = ctypes.CDLL(sd._libname).PaJack_SetClientName
    except (AttributeError, OSError):  # no JACK host API in this PortAudio
        return False
    setter.argtypes, setter.restype = [ctypes.c_char_p], ctypes.c_int
    sd._terminate()
    try:
        _named = setter(_name_buffer) == 0
    finally:
        sd._initialize()
    return _named


def jack_clients() -> set[str]:
    """rtconv's JACK clients now (``jack_lsp``), to tell this run's from another's after it opens."""
    exe = shutil.which("jack_lsp")
    if exe is None:
        return set()
    r = subprocess.run([exe], capture_output=True, text=True, timeout=10)
    return {p.split(":", 1)[0] for p in r.stdout.splitlines() if re.match(PORTS, p)}


def connect_outputs(spec: str, before: set[str], timeout: float = 5.0) -> list[str]:
    """Connect this process's JACK outputs to the ports in ``spec`` (comma-separated): output k to
    the k-th port named.  ``before`` is :func:`jack_clients` from before the stream opened (the new
    client is this run's).  Returns lines saying what was connected; :class:`DeviceError` says why not.
    """
    targets = [t.strip() for t in spec.split(",") if t.strip()]
    lsp, connect = shutil.which("jack_lsp"), shutil.which("jack_connect")
    if lsp is None or connect is None:
        raise DeviceError("--connect needs jack_connect (apt install jackd2) and the stream on JACK (--hostapi jack).")
    end = time.monotonic() + timeout
    ours: list[str] = []
    while time.monotonic() < end and not ours:
        ours = sorted(jack_clients() - before)
        if not ours:
            time.sleep(0.05)
    if len(ours) != 1:
        raise DeviceError("--connect found no JACK client of this run"
                          + (f" (new rtconv clients: {', '.join(ours)})" if ours else "")
                          + "; is the stream on JACK (--hostapi jack)?")
    r = subprocess.run([lsp, f"{ours[0]}:"], capture_output=True, text=True, timeout=10)
    outs = sorted(p for p in r.stdout.splitlines() if ":out_" in p)
    done = []
    for k, target in enumerate(targets[: max(1, len(outs))]):
        src = outs[min(k, len(outs) - 1)]
        c = subprocess.run([connect, src, target], capture_output=True, text=True, timeout=10)
        if c.returncode != 0:
            raise DeviceError(f"could not connect {src} to {target!r} ({(c.stderr or c.stdout).strip() or 'no such port?'}); "
                              "list the ports with jack_lsp.")
        done.append(f"connected {src} -> {target}")
    return done
