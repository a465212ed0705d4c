"""A real JACK server on the dummy backend: an audio device without a sound card.

Test and benchmark tooling, not part of the runtime: used by the live tests,
``rtconv bench live``, ``rtconv bench gui`` and ``gui/screenshot.py``.
``jack_server()`` starts ``jackd -d dummy`` under a unique server name,
points PortAudio (and JACK clients) at it through ``JACK_DEFAULT_SERVER``,
re-initializes PortAudio so it sees the server, and on exit terminates
PortAudio *before* stopping jackd (the other order aborts the interpreter).
The pytest fixture ``jackd`` (tests/conftest.py) yields a :class:`JackServer`.
:class:`Loopback` (needs the JACK-Client package) plays a known signal into
rtconv's PortAudio inputs and captures its outputs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

__all__ = ["JackServer", "jack_server", "jack_available", "Loopback", "wait_for"]


def jack_available() -> str | None:
    """None if jackd and PortAudio can run here, else the reason they cannot."""
    for exe in ("jackd", "jack_wait"):
        if shutil.which(exe) is None:
            return f"{exe} is not installed (apt-get install jackd2)"
    try:
        import sounddevice  # noqa: F401
    except OSError as e:
        return f"PortAudio is missing ({e}; apt-get install libportaudio2)"
    return None


@dataclass
class JackServer:
    name: str
    sample_rate: int
    period: int
    process: subprocess.Popen
    realtime: bool = False

    def ports(self) -> list[str]:
        env = dict(os.environ, JACK_DEFAULT_SERVER=self.name)
        out = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10)
        return out.stdout.split()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: jackd gets SIGTERM when the process that started it dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _reinit_portaudio() -> None:
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


@contextlib.contextmanager
def jack_server(sample_rate: int = 48000, period: int = 256, name: str | None = None, log=None):
    """Run a dummy-backend jackd for the duration of the ``with`` block (its output to ``log``, a path, if given)."""
    name = name or f"rtconv-test-{os.getpid()}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_DEFAULT_SERVER=name)
    old = os.environ.get("JACK_DEFAULT_SERVER")
    logf = subprocess.DEVNULL if log is None else open(log, "w")
    # Realtime scheduling where allowed (as on a desktop), else plain: the
    # dummy driver's timer thread misses its deadlines under load without it.
    for rt in (["-R", "-P", "70"], ["--no-realtime"]):
        proc = subprocess.Popen(
            ["jackd", "-n", name, *rt, "-t", "5000", "-d", "dummy", "-r", str(sample_rate), "-p", str(period)],
            env=env, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
        )
        r = subprocess.run(["jack_wait", "-w", "-t", "10"], env=env, capture_output=True, text=True, timeout=20)
        if r.returncode == 0 and proc.poll() is None:
            break
        proc.kill()
        proc.wait()
    else:
        raise RuntimeError(f"jackd did not start: {r.stdout} {r.stderr}")
    try:
        os.environ["JACK_DEFAULT_SERVER"] = name
        _reinit_portaudio()
        yield JackServer(name, sample_rate, period, proc, realtime=rt[0] == "-R")
    finally:
        try:
            import sounddevice as sd

            sd._terminate()  # PortAudio lets go of the server before it goes away
        except Exception:
            pass
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:
            import sounddevice as sd

            sd._initialize()
        except Exception:
            pass
        if log is not None:
            logf.close()


def count_xruns(log) -> dict:
    """Server xruns in a jackd log: the dummy driver's timer waking late vs clients not finishing in time.

    ``late_by`` names the client that caused each client xrun: the one still
    *running* when the period ended (clients after it in the graph are logged
    too, as merely *triggered*: they were waiting for it).
    """
    import re

    text = open(log, errors="replace").read()
    late_by: dict[str, int] = {}
    for name in re.findall(r"client = (\S+) was not finished, state = Running", text):
        late_by[name] = late_by.get(name, 0) + 1
    return {"driver_late": text.count("JackTimedDriver::Process XRun"), "client_late": text.count("was not finished"),
            "late_by": late_by}


def wait_for(pred, timeout: float = 5.0, step: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Loopback:
    """Two JACK clients around rtconv: one plays ``signal`` into PortAudio's inputs, one captures its outputs.

    Graph: ``rtc-player:out_k -> PortAudio:in_k``, ``PortAudio:out_k ->
    rtc-capture:in_k`` (no cycle, so all run in the same JACK period).
    """

    def __init__(self, server: JackServer, signal, capture_seconds: float, loop: bool = False,
                 capture_channels: int | None = None) -> None:
        import jack
        import numpy as np

        self.np = np
        sig = np.asarray(signal, np.float32)
        self.signal = sig if sig.ndim == 2 else sig[:, None]
        ch = self.signal.shape[1]
        cap_ch = ch if capture_channels is None else int(capture_channels)
        self.captured = np.zeros((int(capture_seconds * server.sample_rate), cap_ch), np.float32)
        self.pos = self.cap = 0
        self.loop = loop
        self.playing = False
        self.play_start = None  # capture index at which playback began
        self.player = jack.Client("rtc-player", servername=server.name, no_start_server=True)
        self.capture = jack.Client("rtc-capture", servername=server.name, no_start_server=True)
        self.outs = [self.player.outports.register(f"out_{k}") for k in range(ch)]
        self.ins = [self.capture.inports.register(f"in_{k}") for k in range(cap_ch)]
        self.player.set_process_callback(self._play)
        self.capture.set_process_callback(self._capture)
        self.xruns = 0  # server xruns seen while these clients were active (late timer or a late client)
        self.player.set_xrun_callback(self._xrun)
        self.player.activate()
        self.capture.activate()

    def _play(self, frames):
        bufs = [p.get_array() for p in self.outs]
        if not self.playing:
            for b in bufs:
                b[:] = 0
            return
        if self.play_start is None:
            self.play_start = self.cap
        sig, np = self.signal, self.np
        if self.loop:
            idx = (self.pos + np.arange(frames)) % len(sig)
            for k, b in enumerate(bufs):
                b[:] = sig[idx, k]
            self.pos += frames
            return
        n = max(0, min(frames, len(sig) - self.pos))
        for k, b in enumerate(bufs):
            b[:n] = sig[self.pos : self.pos + n, k]
            b[n:] = 0
        self.pos += n

    def _xrun(self, delayed_usecs) -> None:
        self.xruns += 1

    def _capture(self, frames):
        if self.loop:  # nothing kept: a soak only counts
            self.cap += frames
            return
        n = max(0, min(frames, len(self.captured) - self.cap))
        for k, p in enumerate(self.ins):
            self.captured[self.cap : self.cap + n, k] = p.get_array()[:n]
        self.cap += n

    def connect(self) -> None:
        """Route through the PortAudio client's current ports, cutting its links to system ports."""
        # rtconv's ports, as the patchbay lists them; imported here because rtconv.live imports torch
        # and `rtconv --help` imports this module with the benchmarks
        from ..live.client import PORTS

        pa_in = sorted(p.name for p in self.player.get_ports(PORTS, is_input=True, is_audio=True))
        pa_out = sorted(p.name for p in self.player.get_ports(PORTS, is_output=True, is_audio=True))
        for port in pa_in + pa_out:
            for other in self.player.get_all_connections(port):
                if other.name.startswith("system:"):
                    self.player.disconnect(other.name, port) if port in pa_in else self.player.disconnect(port, other.name)
        for o, i in zip(self.outs, pa_in, strict=False):
            self.player.connect(o, i)
        for o, i in zip(pa_out, self.ins, strict=False):
            self.capture.connect(o, i)

    def play(self) -> None:
        self.playing = True

    @property
    def done(self) -> bool:
        return self.pos >= len(self.signal)

    def close(self) -> None:
        for c in (self.player, self.capture):
            c.deactivate()
            c.close()
