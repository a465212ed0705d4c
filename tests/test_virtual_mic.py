"""rtconv as other programs' microphone, on a real PulseAudio server (no sound card needed).

A test microphone (a null sink, its monitor the default source) gets a known signal with
``paplay``; ``rtconv live --virtual-mic`` reads it, processes it and plays into its virtual
microphone; ``parecord``, another client, records from that microphone by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

import rtconv
from rtconv import designs

from _pulse import TEST_MIC, modules, pulse_available, pulse_server, sources

RATE = 48000

pytestmark = pytest.mark.skipif(pulse_available() is not None, reason=str(pulse_available()))


@pytest.fixture(scope="module")
def pulse():
    import shutil
    import tempfile

    # not under pytest's tmp_path: the system-mode server runs as 'pulse', which may not enter it
    d = tempfile.mkdtemp(prefix="rtconv-pulse-")
    try:
        with pulse_server(d) as env:
            yield env
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _wait(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def _live(env, *args):
    return subprocess.Popen([sys.executable, "-m", "rtconv", "live", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lag(x, ref, probe=4096):
    c = np.correlate(x, ref[:probe], "valid")
    return int(np.argmax(np.abs(c)))


def _grown(path, seconds):
    """Whether the float WAV at ``path`` holds at least ``seconds`` of mono audio on disk."""
    return path.exists() and path.stat().st_size > 44 + 4 * int(seconds * RATE)


def _holds(path, sig, after):
    """Whether the WAV being recorded at ``path`` holds all of ``sig`` and ``after`` samples more."""
    try:
        x = sf.read(path, dtype="float32")[0]
    except RuntimeError:  # caught mid-flush
        return False
    if len(x) < len(sig):
        return False
    at = _lag(x, sig[1000:])  # only where the signal's start is there: a strong match, not noise's peak
    probe = sig[1000:5096]
    return np.dot(x[at : at + len(probe)], probe) > 0.9 * np.dot(probe, probe) and at + len(sig) + after <= len(x)


def _record_through_the_virtual_microphone(pulse, tmp_path):
    """One run: rtconv --virtual-mic while parecord records from it; rtconv is stopped with Ctrl-C.

    Returns ``(heard, played, got, piece, stats)``: what rtconv recorded from the microphone and the
    stretch of the test signal it should be, the other program's recording and the stretch of
    rtconv's output it should be.  Asserts what is rtconv's alone in every run: a clean exit, the
    virtual microphone's device buffering, and its output is offline processing of what it heard.

    Every step waits for audio to flow rather than for a fixed time: on the test server a new
    stream's first samples arrive up to ~2 s after it opens (a null sink wakes on the latency it
    had before the stream asked for less), so rtconv's stream, and parecord's, may start after
    "ready"; the signal is played only once both are recording.
    """
    tmp_path.mkdir()
    model = designs.lowpass(3000, 63, RATE)
    path = rtconv.save(model, tmp_path / "lp.safetensors", sample_rate=RATE)
    sig = (np.random.default_rng(1).standard_normal(2 * RATE) * 0.1).astype(np.float32)
    sf.write(tmp_path / "sig.wav", sig, RATE, subtype="FLOAT")
    stats = tmp_path / "stats.json"
    # --duration only bounds a run the test fails to stop
    p = _live(pulse, "--model", path, "--virtual-mic", "--duration", 120, "--record", tmp_path / "rec",
              "--stats-json", stats)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(p.stderr), daemon=True)
    reader.start()
    rec = None
    try:
        assert _wait(lambda: any("is ready" in line for line in lines) or p.poll() is not None, 60), \
            "rtconv live did not say its virtual microphone is ready: " + "".join(lines)
        assert p.poll() is None, "".join(lines)
        # apps list it by its description
        listing = subprocess.run(["pactl", "list", "sources"], env=pulse, capture_output=True, text=True).stdout
        assert "Description: rtconv (denoised)" in listing
        heard_wav = tmp_path / "rec" / next(n for n in os.listdir(tmp_path / "rec") if n.endswith("-input.wav"))
        assert _wait(lambda: _grown(heard_wav, 0.25), 20), "rtconv's stream delivered no audio in 20 s"
        rec = subprocess.Popen(["parecord", "--device=rtconv", f"--rate={RATE}", "--channels=1",
                                "--format=float32le", "--file-format=wav", "--latency-msec=20", str(tmp_path / "got.wav")],
                               env=pulse)
        assert _wait(lambda: _grown(tmp_path / "got.wav", 0.25), 20), "parecord recorded nothing in 20 s"
        subprocess.run(["paplay", f"--device={TEST_MIC}", str(tmp_path / "sig.wav")], env=pulse, check=True, timeout=20)
        # the server may hand the signal on well after paplay is done: wait until rtconv heard all of it
        # and half a second more, then give parecord a second to take the output
        assert _wait(lambda: _holds(heard_wav, sig, RATE // 2), 20), "rtconv did not hear the whole signal in 20 s"
        time.sleep(1.0)
        rec.send_signal(signal.SIGINT)
        rec.wait(10)
        p.send_signal(signal.SIGINT)
        p.wait(30)
        reader.join(10)
    finally:
        if rec is not None and rec.poll() is None:
            rec.kill()
        if p.poll() is None:
            p.kill()
    err = "".join(lines)
    assert p.returncode == 0, err
    assert "virtual microphone 'rtconv'" in err and f"reading {TEST_MIC}.monitor" in err
    st = json.loads(stats.read_text())
    # the virtual microphone's default device buffering (20 ms asked; PortAudio rounds to periods)
    assert st["latency"]["device_in_ms"] >= 20 and st["latency"]["device_out_ms"] >= 20, st["latency"]
    files = sorted((tmp_path / "rec").glob("*.wav"))
    rin, rout = (sf.read(f, dtype="float32")[0] for f in files)
    # its output is offline processing of what it heard (latency as reported)
    np.testing.assert_allclose(rout, rtconv.Streamer(rtconv.load(path)).process(rin[:, None])[:, 0], atol=1e-6)
    # where the test signal is in what it heard (the server ramps a new stream's first ~200 samples in)
    lag = _lag(rin, sig[1000:]) - 1000 if len(rin) >= len(sig) else 0
    heard = rin[lag + 1000 : lag + len(sig)]
    # a second of the processed signal, found in the other program's recording
    got = sf.read(tmp_path / "got.wav", dtype="float32")[0]
    piece = rout[lag + RATE // 2 : lag + RATE // 2 + RATE]
    at = _lag(got, piece, probe=8192) if len(got) >= len(piece) > 0 else 0
    return heard, sig[1000:], got[at : at + len(piece)], piece, st


def test_another_program_records_the_processed_signal_from_the_virtual_microphone(pulse, tmp_path):
    # paplay, parecord and the server's null sink run at normal priority: on a loaded shared machine
    # the server can lose a period now and then on the way in or out (zeros, or a skip that shifts
    # the rest), and the server may not take rtconv's output in time (underflows), whatever rtconv
    # does, so the scenario gets three tries to show exact copies both ways and no underflow;
    # every try checks that rtconv's output is offline processing of what it heard (above), and a
    # fault of rtconv's would repeat in every try
    for attempt in range(3):
        heard, played, got, piece, stats = _record_through_the_virtual_microphone(pulse, tmp_path / f"try{attempt}")
        if np.array_equal(heard, played) and np.array_equal(got, piece) and stats["output_underflows"] == 0:
            break
    # rtconv heard the test microphone exactly, and the other program recorded exactly its output
    np.testing.assert_array_equal(heard, played)
    np.testing.assert_array_equal(got, piece)
    assert stats["output_underflows"] == 0
    # gone when rtconv stops
    assert "rtconv" not in sources(pulse) and "rtconv_out" not in modules(pulse)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_the_virtual_microphone_is_removed_on_a_signal_and_a_killed_runs_is_replaced(pulse, tmp_path, how):
    p = _live(pulse, "--virtual-mic", "callmic", "--model", "speech-band")
    try:
        assert _wait(lambda: "callmic" in sources(pulse) or p.poll() is not None, 20)
        assert p.poll() is None, p.communicate()[1]
        time.sleep(0.5)
        p.send_signal(getattr(signal, how))
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    if how != "SIGKILL":
        assert p.returncode == 0, err
        assert "callmic" not in sources(pulse) and "callmic_out" not in modules(pulse)
        return
    assert "callmic" in sources(pulse)  # nobody could clean up after a SIGKILL ...
    q = _live(pulse, "--virtual-mic", "callmic", "--model", "speech-band", "--duration", 1)
    out, err = q.communicate(timeout=60)
    assert q.returncode == 0, err
    assert "callmic" not in sources(pulse) and "callmic_out" not in modules(pulse)  # ... the next run did


def test_a_second_run_with_the_same_name_is_refused_in_one_sentence(pulse, tmp_path):
    # the first run lasts until the test stops it: the second one's start-up (a torch import) can
    # take seconds on a loaded machine
    p = _live(pulse, "--virtual-mic", "--model", "speech-band", "--duration", 60)
    try:
        assert _wait(lambda: "rtconv" in sources(pulse) or p.poll() is not None, 20)
        time.sleep(1.0)
        q = _live(pulse, "--virtual-mic", "--model", "speech-band", "--duration", 1)
        out, err = q.communicate(timeout=60)
        assert q.returncode == 1
        assert "a virtual microphone named 'rtconv' is in use" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
        assert "rtconv" in sources(pulse)  # the first run's microphone is untouched
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)
    assert p.returncode == 0 and "rtconv" not in sources(pulse)


def test_no_server_and_bad_names_are_one_sentence_each(tmp_path):
    env = dict(__import__("os").environ, PULSE_SERVER=f"unix:{tmp_path}/nothing-here")
    r = subprocess.run([sys.executable, "-m", "rtconv", "live", "--virtual-mic", "--model", "speech-band",
                        "--duration", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no PulseAudio or PipeWire server answers" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "rtconv", "live", "--virtual-mic", "my mic"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "'my mic' must be 1-64 letters" in r.stderr
    r = subprocess.run([sys.executable, "-m", "rtconv", "live", "--virtual-mic", "--connect", "x:in"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "do not go together" in r.stderr


@pytest.mark.parametrize("description, shown", [
    ("rtconv (denoised)", "rtconv (denoised)"),
    ("""Bob's "clean" mic\\""", "Bobs clean mic"),
])
def test_the_description_reaches_apps_as_plain_text(pulse, description, shown):
    # the form that PulseAudio and PipeWire's pipewire-pulse both read as plain text (PipeWire kept the
    # backslashes of device.description="rtconv\ (denoised)" and showed them; checked by hand on 0.3.65)
    from rtconv.live.virtual_mic import _properties

    arg = _properties("sink_properties", description)
    assert arg == f"sink_properties=\"device.description='{shown}'\""
    idx = subprocess.run(["pactl", "load-module", "module-null-sink", "sink_name=described", arg], env=pulse,
                         capture_output=True, text=True, check=True).stdout.strip()
    try:
        listing = subprocess.run(["pactl", "list", "sinks"], env=pulse, capture_output=True, text=True).stdout
        assert f"Description: {shown}\n" in listing
    finally:
        subprocess.run(["pactl", "unload-module", idx], env=pulse, capture_output=True)
