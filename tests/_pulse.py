"""A private PulseAudio server for tests: no sound card, a null sink as the test microphone.

Root (as CI runs) gets ``--system`` mode, which drops to the ``pulse`` user; anyone else a
plain user-mode server.  Clients find it through ``PULSE_SERVER`` (given to subprocesses only,
so this test process's own PortAudio never talks to it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time

#: The test microphone: a null sink whose monitor is the default source.
TEST_MIC = "testmic"


def pulse_available() -> str | None:
    """Why a PulseAudio test cannot run here, or None."""
    for exe, pkg in (("pulseaudio", "pulseaudio"), ("pactl", "pulseaudio-utils"), ("parecord", "pulseaudio-utils")):
        if shutil.which(exe) is None:
            return f"{exe} is not installed (apt install {pkg})"
    if not os.path.exists("/usr/share/alsa/alsa.conf.d/pulse.conf") and not os.path.exists(
            "/etc/alsa/conf.d/99-pulse.conf"):
        return "PortAudio's ALSA 'pulse' device is missing (apt install libasound2-plugins)"
    return None


@contextlib.contextmanager
def pulse_server(directory):
    """Start a PulseAudio server with its socket in ``directory``; yield the client environment."""
    directory = str(directory)
    os.chmod(directory, 0o1777)  # the system-mode server runs as 'pulse'
    sock = os.path.join(directory, "native")
    script = os.path.join(directory, "server.pa")
    with open(script, "w") as f:
        f.write(f"load-module module-native-protocol-unix auth-anonymous=1 auth-cookie-enabled=0 socket={sock}\n"
                f"load-module module-null-sink sink_name={TEST_MIC} rate=48000 channels=1 format=float32le "
                f"sink_properties=device.description=TestMic\n"
                f"set-default-source {TEST_MIC}.monitor\n"
                "load-module module-always-sink\n")
    os.chmod(script, 0o644)
    args = ["pulseaudio", "-n", f"--file={script}", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
            "--log-target=stderr", "--use-pid-file=no"]
    if os.geteuid() == 0:
        args += ["--system", "--disallow-module-loading=no"]
    log = open(os.path.join(directory, "server.log"), "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    env = dict(os.environ, PULSE_SERVER=f"unix:{sock}")
    try:
        deadline = time.monotonic() + 15
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError("PulseAudio did not start: " + open(log.name).read()[-2000:])
            time.sleep(0.1)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def modules(env) -> str:
    return subprocess.run(["pactl", "list", "short", "modules"], env=env, capture_output=True, text=True).stdout


def sources(env) -> list[str]:
    out = subprocess.run(["pactl", "list", "short", "sources"], env=env, capture_output=True, text=True).stdout
    return [line.split("\t")[1] for line in out.splitlines() if "\t" in line]
