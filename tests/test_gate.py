"""The live speech gate: its state machine, its alignment with the audio, and the processor wiring."""

from __future__ import annotations

import re

import numpy as np
import pytest

import rtconv
from rtconv.errors import ConfigError
from rtconv.live import LiveProcessor, Monitor
from rtconv.live.gate import Gate
from rtconv.live.rings import DelayLine

from _live import processor

SR = 48000


def _gains(gate: Gate, p: np.ndarray, splits=None) -> np.ndarray:
    out = np.zeros(len(p))
    cuts = [0, *(splits or []), len(p)]
    for a, b in zip(cuts[:-1], cuts[1:]):
        gate.gains(p[a:b], out[a:b])
    return out


def _instant(**kw) -> Gate:
    g = Gate(SR, attack=1e-9, release=1e-9, **kw)
    return g


def test_the_gate_opens_at_the_threshold_holds_then_closes_to_the_floor():
    g = _instant(hold=0.01, floor_db=-20.0)  # hold 480 samples, floor 0.1
    p = np.r_[np.full(1000, 0.1), np.full(2000, 0.9), np.full(3000, 0.1)].astype(np.float32)
    out = _gains(g, p)
    assert np.allclose(out[:1000], 0.1)  # closed from the start, at the floor
    assert np.allclose(out[1000:3000], 1.0)  # open from the first sample at the threshold
    assert np.allclose(out[3000:3480], 1.0)  # held 480 samples after the speech ended
    assert np.allclose(out[3480:], 0.1)  # then closed
    assert g.opened == 1 and not g.open


def test_hysteresis_keeps_an_open_gate_open_and_a_closed_one_closed():
    g = _instant(threshold=0.5, hysteresis=0.15, hold=0.0)
    mid = np.full(1000, 0.4, np.float32)  # between 0.35 and 0.5
    closed = _gains(g, mid)
    assert np.allclose(closed, 0.0)  # never reached 0.5: stays closed
    opened = _gains(g, np.r_[np.full(100, 0.6), mid].astype(np.float32))
    assert np.allclose(opened, 1.0)  # 0.4 keeps it open
    after = _gains(g, np.full(100, 0.3, np.float32))
    assert np.allclose(after, 0.0)  # below 0.35, no hold: closed at once


def test_the_gains_do_not_depend_on_the_block_size():
    rng = np.random.default_rng(3)
    frames = rng.choice([0.05, 0.3, 0.45, 0.7, 0.95], size=200)
    p = np.repeat(frames, 480).astype(np.float32)  # a VAD's track: one value per 10 ms frame
    whole = _gains(Gate(SR, hold=0.05), p)
    for _ in range(3):
        cuts = sorted(rng.choice(np.arange(1, len(p)), size=300, replace=False).tolist())
        assert np.allclose(_gains(Gate(SR, hold=0.05), p, cuts), whole, atol=1e-12)
    # one long block beyond the tables' size is split inside
    small = Gate(SR, max_block=64, hold=0.05)
    assert np.allclose(_gains(small, p), whole, atol=1e-12)


def test_attack_and_release_are_time_constants():
    g = Gate(SR, attack=0.005, release=0.08, hold=0.0, floor_db=float("-inf"))
    g.gain = 0.0
    up = _gains(g, np.full(SR // 10, 0.9, np.float32))
    tau = round(0.005 * SR)
    assert up[tau - 1] == pytest.approx(1 - np.exp(-1), rel=1e-3)  # 63 % after one attack time constant
    down = _gains(g, np.full(SR, 0.0, np.float32))
    assert 20 * np.log10(down[3 * round(0.08 * SR) - 1]) == pytest.approx(-26.06, abs=0.05)
    assert down[-1] < 1e-5  # -inf floor: on its way to silence


def test_the_smoother_takes_its_target_exactly_within_120_db_and_then_stays_there_at_any_block_size():
    from rtconv.live.gate import SNAP

    p = np.r_[np.full(SR // 2, 0.9), np.full(3 * SR, 0.0)].astype(np.float32)  # speech, then 3 s of pause
    whole = _gains(Gate(SR, hold=0.0, release=0.08), p)
    split = _gains(Gate(SR, hold=0.0, release=0.08), p, list(range(128, len(p), 128)))
    np.testing.assert_allclose(whole, split, rtol=0, atol=1e-12)  # the path's rounding differs by the split
    assert np.argmax(whole == 0.0) == np.argmax(split == 0.0)  # the sample that takes the target does not
    closed = whole[SR // 2 :]
    tau = round(0.08 * SR)
    first = int(np.argmax(closed == 0.0))
    assert closed[first - 1] > SNAP >= closed[first - 1] * np.exp(-1 / tau) and np.all(closed[first:] == 0.0)
    assert first == pytest.approx(tau * np.log(1 / SNAP), rel=1e-3)  # 13.8 time constants: 1.1 s
    assert np.all(closed[: first] >= 1e-300)  # never subnormal on the way


def test_force_open_ramps_to_unity_and_counts_one_opening():
    g = _instant()
    out = np.zeros(100)
    g.gains(np.zeros(100, np.float32), out, force_open=True)
    assert np.allclose(out, 1.0) and g.open and g.opened == 1


@pytest.mark.parametrize("delay", [0, 1, 100, 479])
def test_delay_line_equals_a_shift_at_any_block_size(delay):
    rng = np.random.default_rng(delay)
    x = rng.standard_normal((5000, 2)).astype(np.float32)
    line = DelayLine(delay + 700, 2)
    out = np.zeros_like(x)
    i = 0
    while i < len(x):
        n = int(rng.integers(1, 700))
        blk = x[i : i + n].copy()
        line.process(blk, delay, blk)  # in place, as the processor uses it
        out[i : i + n] = blk
        i += n
    want = np.r_[np.zeros((delay, 2), np.float32), x[: len(x) - delay]]
    assert np.array_equal(out, want)


# ------------------------------------------------------------------ the processor
def _delta(latency: int) -> rtconv.FIR:
    """A model that passes its input, aligned offline and ``latency`` samples late when streamed."""
    k = np.zeros(2 * latency + 1)
    k[latency] = 1.0
    return rtconv.FIR(k, padding="same") if latency else rtconv.FIR([1.0])


def _run(proc: LiveProcessor, x: np.ndarray, block: int) -> np.ndarray:
    return np.concatenate([proc.process(x[i : i + block]).copy() for i in range(0, len(x), block)])


@pytest.mark.parametrize("model_latency,vad_latency", [(0, 100), (300, 100), (191, 479)])
@pytest.mark.parametrize("block", [64, 128, 1000])
def test_the_gate_silences_exactly_the_samples_its_vad_judged_silent(model_latency, vad_latency, block):
    # the 'VAD' passes its input, so the probability of each sample is the sample itself:
    # only the 0.9 stretch may pass, shifted by the reported latency, whichever path is slower
    x = np.r_[np.full(2000, 0.2), np.full(3000, 0.9), np.full(3000, 0.2)].astype(np.float32)[:, None]
    proc = processor(_delta(model_latency), SR, 1, block, vad=_delta(vad_latency), realtime_check=False)
    proc.set_controls(gate=True, gate_hold=0.0, gate_attack=1e-9, gate_release=1e-9, limiter=False)
    y = _run(proc, x, block)[:, 0]
    lat = proc.latency
    assert lat == max(model_latency, vad_latency)
    want = np.zeros(len(x))
    want[2000 + lat : 5000 + lat] = 0.9
    assert np.allclose(y, want, atol=1e-6), np.flatnonzero(np.abs(y - want) > 1e-6)[:5]


@pytest.mark.parametrize("block", [128, 300])
def test_the_gate_delays_the_whole_output_by_the_vads_wait_only_while_it_is_on(block):
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((SR // 2, 1))).astype(np.float32)
    model = rtconv.load("models/denoiser.safetensors")
    plain = processor(model, SR, 1, block)
    metered = processor(model, SR, 1, block, vad="models/vad.safetensors")
    gated = processor(model, SR, 1, block, vad="models/vad.safetensors")
    gated.set_controls(gate=True, gate_threshold=0.01, gate_hold=10.0)  # always open: only the delay shows
    for p in (plain, metered, gated):
        p.set_controls(wet=0.5)  # the dry path is delayed along with the wet one
    a, m, g = _run(plain, x, block), _run(metered, x, block), _run(gated, x, block)
    # a VAD that only feeds the meter costs nothing: same output, same latency
    np.testing.assert_array_equal(m, a)
    assert metered.latency == 191 and metered.stats()["latency"]["gate_ms"] == 0
    # gating: everything waits 288 samples more for the decisions
    d = gated.gate_delay
    assert d == 479 - 191 and gated.latency == 479
    np.testing.assert_allclose(g[d + SR // 10 :], a[SR // 10 : len(a) - d], atol=1e-6)  # past the opening ramp
    assert np.all(g[:d] == 0)
    st = gated.stats()
    assert st["latency"]["gate_ms"] == pytest.approx(d / SR * 1e3)
    assert st["latency"]["total_ms"] == pytest.approx(479 / SR * 1e3)
    assert st["gate"]["on"] is True and st["gate"]["vad_errors"] == 0


def test_the_gate_mutes_noise_and_passes_speech_with_the_shipped_vad():
    import soundfile as sf

    speech, sr = sf.read("recordings/demo_noisy.wav", dtype="float32", always_2d=True)
    assert sr == SR
    rng = np.random.default_rng(1)
    quiet = (0.003 * rng.standard_normal((SR * 2, 1))).astype(np.float32)  # -50 dBFS room noise
    x = np.r_[quiet, speech[: SR * 3, :1]]
    proc = processor(_delta(0), SR, 1, 128, vad="models/vad.safetensors")
    proc.set_controls(gate=True, limiter=False)
    y = _run(proc, x, 128)
    lat = proc.latency
    rms = lambda a: 10 * np.log10(np.mean(np.square(a)) + 1e-30)  # noqa: E731
    # the last second of noise alone: muted by 40 dB or more
    assert rms(y[SR + lat : 2 * SR + lat]) < rms(x[SR : 2 * SR]) - 40
    # the speech passes within 1 dB of the input, delayed by the VAD's latency
    assert abs(rms(y[2 * SR + lat :]) - rms(x[2 * SR : len(x) - lat])) < 1.0
    st = proc.stats()["gate"]
    assert st["opened"] >= 1 and st["vad_errors"] == 0
    # bypass opens it again: the input passes, delayed
    proc.set_controls(bypass=True)
    tail = _run(proc, quiet[: SR // 2], 128)
    assert rms(tail[SR // 4 :]) == pytest.approx(rms(quiet[: SR // 4]), abs=1.0)


def test_a_vad_that_fails_opens_the_gate_and_the_stream_keeps_running():
    # a 'VAD' whose output overflows to inf on loud input: every block of it fails
    proc = processor(_delta(0), SR, 1, 128, vad=rtconv.FIR([3e38, 3e38]), realtime_check=False)
    proc.set_controls(gate=True, limiter=False)
    x = np.full((128 * 20, 1), 0.9, np.float32)
    y = _run(proc, x, 128)
    errors = proc.stats()["gate"]["vad_errors"]
    assert errors >= 19 and proc.internal_errors == 0
    assert np.allclose(y[-128:], 0.9, atol=1e-4)  # open: the audio passes
    assert proc.speech.errors == errors


def test_a_model_that_is_not_a_vad_is_refused_in_one_sentence():
    with pytest.raises(ConfigError) as e:
        processor(_delta(0), SR, 1, 128, vad="models/denoiser.safetensors")
    msg = str(e.value)
    assert "not a voice-activity detector" in msg and "models/vad.safetensors" in msg and msg.count(". ") == 0


def test_a_separator_given_as_the_vad_is_named_for_what_it_is_with_one_piece_of_advice():
    """--vad freqsep said 'use a model with as many outputs as inputs; use models/vad.safetensors ...'."""
    with pytest.raises(ConfigError) as e:
        processor(_delta(0), SR, 1, 128, vad="freqsep")
    msg = str(e.value)
    assert re.fullmatch(r"the VAD '.*freqsep(\.safetensors)?' cannot gate this stream: it is a '\w+' model, not a "
                        r"voice-activity detector \(task 'vad'\); use models/vad\.safetensors or a model trained "
                        r"with `rtconv train vad`\.", msg), msg


def test_the_gate_state_is_shared_with_a_display_process():
    from multiprocessing import shared_memory

    a = processor(_delta(0), SR, 1, 128, vad="models/vad.safetensors")
    shm = shared_memory.SharedMemory(create=True, size=a.monitor.nbytes)
    try:
        a.monitor.share(shm.buf)
        b = Monitor.attach(shm.buf, SR, 1)  # a display process reads it
        import soundfile as sf

        speech, _ = sf.read("recordings/demo_noisy.wav", dtype="float32", always_2d=True)
        _run(a, speech[: SR, :1], 128)
        assert b.gate_state() == a.monitor.gate_state() and 0.0 <= b.gate_state()["probability"] <= 1.0
        assert b.gate_state()["probability"] > 0.5  # a second of speech
        assert b.meters() == a.monitor.meters() and b.written == a.monitor.written == SR
        del a, b
    finally:
        shm.close()
        shm.unlink()


@pytest.mark.parametrize("option, value", [("--gate-floor", "-20"), ("--gate-threshold", "0.7"),
                                           ("--gate-hold", "0.5"), ("--gate-release", "0.2")])
def test_a_gate_setting_without_gate_is_refused_rather_than_ignored(option, value):
    """`rtconv live --gate-floor -20` ran with no gate at all; the CLI has no other way to turn it on."""
    import subprocess
    import sys

    for extra in ([], ["--vad"]):  # --vad alone shows the probability, and gates nothing either
        r = subprocess.run([sys.executable, "-m", "rtconv", "live", *extra, option, value],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip() == (f"rtconv live: error: {option} sets the speech gate, which is off; add --gate to "
                                    f"turn it on, or leave {option} out."), r.stderr


def test_the_cli_takes_gate_settings_and_refuses_a_positive_floor_in_one_line():
    import subprocess
    import sys

    from rtconv.cli import live

    r = subprocess.run([sys.executable, "-m", "rtconv", "live", "--gate", "--gate-floor", "3"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "expected a floor of 0 dB or below, or 'silence', got '3'" in r.stderr
    assert "Traceback" not in r.stderr
    from rtconv.cli.common import floor_db

    assert floor_db("silence") == float("-inf") and floor_db("-30") == -30.0
    s = {"seconds": 1.0, "block_ms": {"median": 0.3, "p99": 0.5, "budget": 2.667}, "dropouts": 0, "input_overflows": 0,
         "output_underflows": 0, "cpu_load": 0.1, "latency": {"total_ms": 9.98}, "model_errors": 0,
         "gate": {"probability": 0.93, "open": True, "on": True}}
    assert "speech 0.93 gate open" in live.status_line(s)
    s["gate"]["on"] = False
    line = live.status_line(s)
    assert "speech 0.93" in line and "gate" not in line.split("speech 0.93")[1].split("dropouts")[0]
