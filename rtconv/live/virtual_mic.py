"""rtconv as the microphone of other programs, through the sound server's own modules.

On a Linux desktop with PulseAudio or PipeWire (``pipewire-pulse``), a
:class:`VirtualMic` loads two stock modules with ``pactl``:

* ``module-null-sink`` named ``<name>_out``: a sink nothing plays, which
  rtconv's output stream plays into;
* ``module-remap-source`` named ``<name>`` on that sink's monitor, described
  as e.g. ``rtconv (denoised)``: a source that call and recording apps list
  as a microphone.

The stream reaches them through PortAudio's ALSA ``pulse`` device (from
``libasound2-plugins``, or ``pipewire-alsa``), told where to go by libpulse's
own variables: ``PULSE_SINK`` for the output, and ``PULSE_SOURCE`` pinned to
the default microphone as it was before the virtual one appeared (so rtconv
never records itself).  :meth:`VirtualMic.close` unloads both modules; the
CLI calls it on exit, Ctrl-C and SIGTERM.  After a SIGKILL the next run
finds the leftovers, sees that nothing plays into them and replaces them.

No audio goes through anything hand-made: the server moves every sample.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from ..errors import ConfigError, DeviceError

__all__ = ["VirtualMic", "check_name", "DEVICE_LATENCY"]

#: Seconds PortAudio buffers per device on the way to the virtual microphone (``rtconv live
#: --virtual-mic``'s default ``--device-latency``).  PortAudio's ``low`` (about 11 ms in, 13 ms out
#: through the ``pulse`` device) dropped 2 blocks in 4 of 6 15-second runs on a test PulseAudio
#: server, where the plugin's thread and the server run at normal priority; 20 ms (24 ms in,
#: 27 ms out) dropped none in 8.  A call app holds a jitter buffer of its own.
DEVICE_LATENCY = 0.02

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def check_name(name: str) -> str:
    """A source name the server accepts: letters, digits, ``_ . -``."""
    if not _NAME.match(name or ""):
        raise ConfigError(f"the virtual microphone's name {name!r} must be 1-64 letters, digits, '_', '.' or '-' "
                          "(it is the source's name; the description apps show is derived from it), e.g. rtconv.")
    return name


def _properties(key: str, description: str) -> str:
    """A module argument that sets ``device.description``: ``KEY="device.description='rtconv (denoised)'"``.

    The whole property list in double quotes for the module argument parser, the value in single quotes
    for the property list parser: PulseAudio and PipeWire's pipewire-pulse both read this as the plain
    text (PipeWire kept the backslashes of ``"rtconv\\ (denoised)"``, which PulseAudio removes, and
    showed them in every app).  Quotes and backslashes in the text are dropped.
    """
    clean = "".join(c for c in description if c not in "'\"\\")
    return f"{key}=\"device.description='{clean}'\""


class VirtualMic:
    """A virtual microphone on the running PulseAudio or PipeWire server.

    Parameters
    ----------
    name : str
        The source's name (``pactl list sources``); the sink rtconv plays
        into is ``<name>_out``.
    description : str, optional
        What apps show; default ``"<name> (denoised)"``.
    sample_rate, channels : int
        The stream's; the sink runs at them in float32, so nothing is
        converted between rtconv and the server.
    """

    def __init__(self, name: str = "rtconv", description: str | None = None, sample_rate: int = 48000,
                 channels: int = 1) -> None:
        self.name = check_name(name)
        self.sink = f"{self.name}_out"
        self.description = description or f"{self.name} (denoised)"
        if len(self.description) > 128 or not self.description.isprintable():
            raise ConfigError(f"the virtual microphone's description {self.description!r} must be printable and "
                              "at most 128 characters.")
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self.modules: list[int] = []
        self.microphone: str | None = None  # the default source before ours existed
        self.replaced: list[int] = []  # stale modules of a killed run, unloaded

    # ------------------------------------------------------------------ pactl
    def _pactl(self, *args: str, check: bool = True) -> str:
        exe = shutil.which("pactl")
        if exe is None:
            raise DeviceError("--virtual-mic needs pactl (apt install pulseaudio-utils) and a running PulseAudio "
                              "or PipeWire server (pipewire-pulse); with JACK, use --connect instead.")
        try:
            r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"the sound server did not answer 'pactl {args[0]}' within 10 s; is it hung?") from None
        if check and r.returncode != 0:
            why = (r.stderr or r.stdout).strip().splitlines()
            raise DeviceError(f"'pactl {' '.join(args)}' failed ({why[-1] if why else f'exit {r.returncode}'}).")
        return r.stdout

    def _modules(self) -> list[tuple[int, str, str]]:
        out = []
        for line in self._pactl("list", "short", "modules").splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0].isdigit():
                out.append((int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
        return out

    def _ours(self) -> list[int]:
        """Modules that carry our sink or source name (a running or a killed rtconv's)."""
        mine = []
        for idx, module, args in self._modules():
            if (module == "module-null-sink" and f"sink_name={self.sink}" in args.split()) or (
                    module == "module-remap-source" and f"source_name={self.name}" in args.split()):
                mine.append(idx)
        return mine

    def _sink_busy(self) -> bool:
        """Something plays into our sink (another rtconv live with this name)."""
        sinks = {p[1]: p[0] for p in (l.split("\t") for l in self._pactl("list", "short", "sinks").splitlines())
                 if len(p) > 1}
        idx = sinks.get(self.sink)
        if idx is None:
            return False
        return any(p[1] == idx for p in (l.split("\t") for l in self._pactl("list", "short", "sink-inputs").splitlines())
                   if len(p) > 1)

    # ------------------------------------------------------------------ life cycle
    def open(self) -> "VirtualMic":
        """Create the sink and the source (replacing a killed run's); raises DeviceError saying why not."""
        try:
            info = self._pactl("info")
        except DeviceError as e:
            raise DeviceError(f"no PulseAudio or PipeWire server answers, so there is nowhere to put a virtual "
                              f"microphone: {e} Start one (a desktop session has it), or use JACK with --connect.") from None
        m = re.search(r"^Default Source:\s*(\S+)", info, re.M)
        self.microphone = m.group(1) if m and m.group(1) != self.name else None
        stale = self._ours()
        if stale:
            if self._sink_busy():
                raise DeviceError(f"a virtual microphone named {self.name!r} is in use (another rtconv live?); "
                                  f"pick another name with --virtual-mic NAME.")
            for idx in sorted(stale, reverse=True):
                self._pactl("unload-module", str(idx), check=False)
            self.replaced = stale
        try:
            self.modules.append(int(self._pactl(
                "load-module", "module-null-sink", f"sink_name={self.sink}", f"rate={self.sample_rate}",
                f"channels={self.channels}", "format=float32le",
                _properties("sink_properties", self.description + " - rtconv output")).strip()))
            self.modules.append(int(self._pactl(
                "load-module", "module-remap-source", f"master={self.sink}.monitor", f"source_name={self.name}",
                f"rate={self.sample_rate}", f"channels={self.channels}", "format=float32le",
                _properties("source_properties", self.description)).strip()))
        except (DeviceError, ValueError) as e:
            self.close()
            raise DeviceError(f"could not create the virtual microphone {self.name!r}: {e}") from None
        return self

    def environment(self) -> dict[str, str]:
        """libpulse's variables for rtconv's streams: play into our sink, record the real microphone."""
        env = {"PULSE_SINK": self.sink}
        if self.microphone:
            env["PULSE_SOURCE"] = self.microphone
        return env

    def apply_environment(self) -> None:
        """Set :meth:`environment` in this process (before PortAudio opens the stream)."""
        os.environ.update(self.environment())

    def close(self) -> None:
        """Unload the modules (idempotent; errors ignored: the server may be gone)."""
        mods, self.modules = self.modules, []
        for idx in reversed(mods):
            try:
                self._pactl("unload-module", str(idx), check=False)
            except DeviceError:
                pass

    def __enter__(self) -> "VirtualMic":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
