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


def _connections(lsp: str, client: str) -> dict[str, list[str]]:
    """``client``'s output ports and what each is connected to now (``jack_lsp -c``)."""
    r = subprocess.run([lsp, "-c", f"{client}:"], capture_output=True, text=True, timeout=10)
    out: dict[str, list[str]] = {}
    port = None
    for line in r.stdout.splitlines():
        if not line.startswith((" ", "\t")):
            port = line.strip() if ":out_" in line else None
            if port is not None:
                out[port] = []
        elif port is not None and line.strip():
            out[port].append(line.strip())
    return out


def connect_outputs(spec: str, before: set[str], timeout: float = 5.0) -> list[str]:
    """Route this process's JACK outputs to the ports in ``spec`` (comma-separated), and only there.

    Output k goes to the k-th port named (a mono stream to every port named;
    outputs beyond the ports named stay unconnected).  What PortAudio
    connected by itself (the speakers, ``system:playback_*``) is disconnected
    unless named: ``--connect`` says where the output goes, as
    ``--virtual-mic`` plays instead of the speakers; name the speakers' port
    too to hear it.  A connection that exists already is kept.  ``before`` is
    :func:`jack_clients` from before the stream opened (the new client is
    this run's).  Returns lines saying what was done; :class:`DeviceError`
    says why not.
    """
    targets = list(dict.fromkeys(t.strip() for t in spec.split(",") if t.strip()))
    lsp, connect, disconnect = (shutil.which(x) for x in ("jack_lsp", "jack_connect", "jack_disconnect"))
    if lsp is None or connect is None or disconnect is None:
        raise DeviceError("--connect needs jack_connect (apt install jackd2) and the stream on JACK (--hostapi jack).")
    if not targets:
        raise DeviceError(f"--connect {spec!r} names no port; give JACK input ports, comma-separated "
                          "(e.g. obs:in_1,obs:in_2), as jack_lsp lists them.")
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
    now = _connections(lsp, ours[0])
    outs = sorted(now, key=lambda p: int(re.sub(r"\D", "", p.rsplit("_", 1)[-1]) or 0))
    if not outs:
        raise DeviceError(f"--connect found no output ports of {ours[0]!r}; is the stream on JACK (--hostapi jack)?")
    wanted = {(outs[k % len(outs)], t) for k, t in enumerate(targets)}
    done = []
    for k, target in enumerate(targets):
        src = outs[k % len(outs)]
        if target in now[src]:
            done.append(f"connected {src} -> {target} (already)")
            continue
        c = subprocess.run([connect, src, target], capture_output=True, text=True, timeout=10)
        if c.returncode != 0:
            raise DeviceError(f"could not connect {src} to {target!r} ({(c.stderr or c.stdout).strip() or 'no such port?'}); "
                              "list the ports with jack_lsp.")
        done.append(f"connected {src} -> {target}")
    for src in outs:  # what PortAudio connected by itself and --connect did not name
        for other in now[src]:
            if (src, other) not in wanted:
                subprocess.run([disconnect, src, other], capture_output=True, text=True, timeout=10)
                done.append(f"disconnected {src} -> {other} (not named by --connect; name it too to keep it)")
    return done
