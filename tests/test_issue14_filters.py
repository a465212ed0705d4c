"""`rtconv filter` (issue 14): aligned files by default, minimum phase for live, honest tap counts, .safetensors only."""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import rtconv
from rtconv import designs
from rtconv.cli import main
from rtconv.files import process_file

ROOT = Path(__file__).resolve().parent.parent
RATE = 48000


def _impulse_file(path, at=1000, frames=4000, rate=RATE):
    x = np.zeros(frames, np.float32)
    x[at] = 0.5
    sf.write(str(path), x, rate, subtype="FLOAT")
    return path


def _click_after_processing(tmp_path, model_path, at=1000):
    """Where a processed click's energy is centred (its centroid in samples), and the output length."""
    src = _impulse_file(tmp_path / "click.wav", at=at)
    out = tmp_path / "click-out.wav"
    process_file(src, out, model_path)
    y, _ = sf.read(str(out), dtype="float64")
    e = y**2
    return round(float(np.sum(np.arange(len(y)) * e) / np.sum(e)), 3), len(y)


def _gain_db(kernel, freq, rate=RATE):
    n = np.arange(len(kernel))
    return 20 * np.log10(abs(np.exp(-2j * np.pi * freq * n / rate) @ np.asarray(kernel, np.float64)))


# --- 1. timing ----------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["lowpass", "--cutoff", "2000", "--taps", "101"],
    ["highpass", "--cutoff", "1000", "--taps", "101"],
    ["bandpass", "--cutoff", "300", "3400", "--taps", "201"],
    ["edge"],
    ["moving-average", "--taps", "9"],
])
def test_a_default_filter_leaves_a_processed_click_where_it_was(tmp_path, capsys, argv):
    model = tmp_path / "f.safetensors"
    assert main(["filter", *argv, "-o", str(model), "-r", str(RATE)]) == 0
    assert _click_after_processing(tmp_path, model) == (1000, 4000)
    assert "processed files come out aligned" in capsys.readouterr().out


def test_padding_causal_keeps_the_group_delay_in_the_output(tmp_path, capsys):
    model = tmp_path / "f.safetensors"
    assert main(["filter", "lowpass", "--cutoff", "2000", "--taps", "101", "--padding", "causal",
                 "-o", str(model)]) == 0
    assert "output is delayed by the group delay, 50 samples = 1.04 ms" in capsys.readouterr().out
    assert rtconv.load(model).latency == 0
    assert _click_after_processing(tmp_path, model)[0] == 1050


@pytest.mark.parametrize("kind, cut, taps, probes", [
    ("lowpass", {"cutoff": 2000}, 101, [500, 1000, 2000, 3000, 6000]),
    ("highpass", {"cutoff": 80}, 1101, [20, 40, 80, 120, 1000]),
    ("bandpass", {"low": 300, "high": 3400}, 201, [100, 300, 1000, 3400, 6000]),
])
def test_minimum_phase_keeps_the_magnitude_is_causal_and_delays_far_less(kind, cut, taps, probes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", designs.FilterDesignWarning)  # the bandpass is short; no matter here
        lin = designs.design(kind, **cut, taps=taps, sample_rate=RATE)
        mini = designs.design(kind, **cut, taps=taps, sample_rate=RATE, phase="minimum")
    assert mini.latency == 0 and mini.kernel.size == taps
    for f in probes:
        a, b = _gain_db(lin.kernel, f), _gain_db(mini.kernel, f)
        assert abs(a - b) < 0.1 or (a < -40 and b < -40), (f, a, b)
    # the energy arrives early: half of it before half the linear-phase delay
    energy = np.cumsum(mini.kernel.astype(np.float64) ** 2) / np.sum(mini.kernel.astype(np.float64) ** 2)
    assert np.searchsorted(energy, 0.5) < (taps - 1) / 2 / 2
    assert mini.metadata["design"]["phase"] == "minimum"


def test_minimum_phase_from_the_command_line_says_its_delay(tmp_path, capsys):
    out = tmp_path / "live.safetensors"
    assert main(["filter", "highpass", "--cutoff", "80", "--taps", "1101", "--phase", "minimum",
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "latency 0 samples (minimum phase: group delay" in text
    assert rtconv.load(out).metadata["design"]["phase"] == "minimum"


def test_minimum_phase_with_same_padding_is_refused_in_one_sentence(tmp_path, capsys):
    out = tmp_path / "f.safetensors"
    assert main(["filter", "lowpass", "--cutoff", "2000", "--phase", "minimum", "--padding", "same",
                 "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rtconv filter: error: a minimum-phase filter is causal")
    assert "\n" not in err and not out.exists()


# --- 2. taps ------------------------------------------------------------------------


def test_too_few_taps_for_the_cutoff_warn_with_the_tap_count_that_works():
    with pytest.warns(designs.FilterDesignWarning) as caught:
        designs.highpass(80, taps=255, sample_rate=RATE)
    msg = str(caught[0].message)
    need = int(re.search(r"use (\d+) taps or more", msg).group(1))
    assert "-4.8 dB at 40 Hz" in msg and "-3.4 dB at 120 Hz" in msg, msg
    with warnings.catch_warnings():
        warnings.simplefilter("error", designs.FilterDesignWarning)
        enough = designs.highpass(80, taps=need, sample_rate=RATE)
    assert _gain_db(enough.kernel, 40) <= designs.STOP_DB and _gain_db(enough.kernel, 120) >= designs.PASS_DB
    with pytest.warns(designs.FilterDesignWarning):
        designs.highpass(80, taps=need - 2, sample_rate=RATE)  # the fewest that work, not just some


def test_the_cli_prints_the_taps_warning_and_still_writes_the_filter(tmp_path, capsys):
    out = tmp_path / "rumble.safetensors"
    assert main(["filter", "highpass", "--cutoff", "80", "--taps", "255", "-o", str(out)]) == 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("rtconv filter: warning: a 255-tap highpass at 80 Hz") and "\n" not in err
    assert "taps or more" in err and out.exists()


def _readme_filter_commands():
    text = (ROOT / "README.md").read_text()
    return [shlex.split(line.strip())[2:] for line in text.splitlines() if line.strip().startswith("rtconv filter ")]


def test_every_filter_example_in_the_readme_filters_without_a_warning(tmp_path, capsys):
    commands = _readme_filter_commands()
    assert len(commands) >= 4
    for argv in commands:
        i = argv.index("-o")
        argv[i + 1] = str(tmp_path / Path(argv[i + 1]).name)
        assert main(["filter", *argv]) == 0, argv
        err = capsys.readouterr().err
        assert "warning" not in err, (argv, err)


def test_the_speech_band_card_states_the_gains_the_shipped_kernel_measures():
    card = (ROOT / "models" / "speech-band.md").read_text()
    prose = " ".join(card.split()).replace("−", "-")
    assert "removes what lies outside it" not in prose  # it turns 50 Hz down by 12.5 dB, not away
    assert "-12.5 dB at 50 Hz" in prose and "-11.0 dB at 60 Hz" in prose
    kernel = rtconv.load(ROOT / "models" / "speech-band.safetensors").kernel
    rows = [line for line in card.splitlines() if line.startswith("| frequency |") or line.startswith("| gain |")]
    freqs, gains = ([c.strip() for c in r.strip("|").split("|")[1:]] for r in rows[:2])
    checked = 0
    for f, g in zip(freqs, gains):
        if re.fullmatch(r"[\d.]+ k?Hz", f) and g.endswith("dB"):
            hz = float(f.split()[0]) * (1000 if "kHz" in f else 1)
            assert abs(_gain_db(kernel, hz) - float(g.split()[0].replace("−", "-"))) < 0.15, (f, g)
            checked += 1
    assert checked >= 6


# --- 3. output name -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.wav", "out", "out.safetensor"])
def test_a_model_output_not_named_safetensors_is_refused_in_one_sentence(tmp_path, capsys, name):
    out = tmp_path / name
    assert main(["filter", "lowpass", "--cutoff", "2000", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rtconv filter: error: the output {str(out)!r} is not a model file name")
    assert ".safetensors" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_model_is_kept_unless_overwrite_is_given(tmp_path, capsys):
    out = tmp_path / "lp.safetensors"
    assert main(["filter", "lowpass", "--cutoff", "2000", "-o", str(out)]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main(["filter", "highpass", "--cutoff", "80", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"rtconv filter: error: {str(out)!r} exists; pass --overwrite to replace it or name another file with -o."
    assert out.read_bytes() == before
    assert main(["filter", "highpass", "--cutoff", "80", "-o", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != before and rtconv.load(out).metadata["design"]["kind"] == "highpass"


def test_a_folder_named_like_a_model_is_refused_in_one_sentence(tmp_path, capsys):
    out = tmp_path / "lp.safetensors"
    out.mkdir()
    assert main(["filter", "lowpass", "--cutoff", "2000", "-o", str(out), "--overwrite"]) == 1
    err = capsys.readouterr().err.strip()
    assert "is a folder" in err and "\n" not in err and list(out.iterdir()) == []


def test_a_two_tap_centred_filter_says_it_is_centred_not_causal(tmp_path, capsys):
    out = tmp_path / "ma2.safetensors"
    assert main(["filter", "moving-average", "--taps", "2", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "latency 0 samples (centred: the 0.5-sample group delay is under one sample" in said and "causal" not in said
    assert main(["filter", "moving-average", "--taps", "2", "--padding", "causal", "-o", str(out), "--overwrite"]) == 0
    assert "(causal: the output is delayed by the group delay, 0.5 samples" in capsys.readouterr().out


def test_an_empty_output_name_is_refused_in_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["filter", "lowpass", "--cutoff", "2000", "-o", ""]) == 1
    assert capsys.readouterr().err.strip() == ("rtconv filter: error: the output name is empty; name the model file "
                                               "to write, e.g. 'filter.safetensors'.")
    assert list(tmp_path.iterdir()) == []
