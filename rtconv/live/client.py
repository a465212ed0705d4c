"""How rtconv appears to a sound server: its JACK (and PipeWire-JACK) client name.

PortAudio names its JACK client "PortAudio" unless ``PaJack_SetClientName``
is called before ``Pa_Initialize``; sounddevice does not wrap that call, so
it is made through ctypes on the library sounddevice loaded, and PortAudio
is re-initialised once so the name takes effect.  Patchbays (qjackctl,
Carla, Helvum, pw-link) then list "rtconv", which is what users look for
when they wire the cleaned microphone into another program.
"""

from __future__ import annotations

import ctypes

__all__ = ["CLIENT_NAME", "PORTS", "name_client"]

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
