"""A real JACK server on the dummy backend, for tests that need an audio device.

``jack_server()`` starts ``jackd -d dummy`` under a unique server name,
points PortAudio (and JACK clients) at it through ``JACK_DEFAULT_SERVER``,
re-initializes PortAudio so it sees the server, and on exit terminates
PortAudio *before* stopping jackd (the other order aborts the interpreter).
The pytest fixture ``jackd`` (session scope, registered in conftest.py)
yields a :class:`JackServer`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

__all__ = ["JackServer", "jack_server", "jack_available"]


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
    samplerate: int
    period: int
    process: subprocess.Popen

    def ports(self) -> list[str]:
        env = dict(os.environ, JACK_DEFAULT_SERVER=self.name)
        out = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True, timeout=10)
        return out.stdout.split()


def _reinit_portaudio() -> None:
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


@contextlib.contextmanager
def jack_server(samplerate: int = 48000, period: int = 256, name: str | None = None):
    """Run a dummy-backend jackd for the duration of the ``with`` block."""
    name = name or f"rtconv-test-{os.getpid()}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", JACK_DEFAULT_SERVER=name)
    old = os.environ.get("JACK_DEFAULT_SERVER")
    # Realtime scheduling where allowed (as on a desktop), else plain: the
    # dummy driver's timer thread misses its deadlines under load without it.
    for rt in (["-R", "-P", "70"], ["--no-realtime"]):
        proc = subprocess.Popen(
            ["jackd", "-n", name, *rt, "-t", "5000", "-d", "dummy", "-r", str(samplerate), "-p", str(period)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
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
        yield JackServer(name, samplerate, period, proc)
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


def wait_for(pred, timeout: float = 5.0, step: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()
