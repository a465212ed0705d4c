"""`rtconv bench engine`: the streamer beside naive recomputation, lfilter and pedalboard, in one run."""

import numpy as np
import pytest

import rtconv
from rtconv.bench.engine import fidelity
from rtconv.cli import main


def _stream(kernel, gain=1.0, delay=0):
    """A block function: ``gain`` times the exact convolution with ``kernel``, ``delay`` samples late."""
    model = rtconv.FIR(np.concatenate([np.zeros(delay), gain * np.asarray(kernel)]))
    return rtconv.Streamer(model, threads=1, block_size=128).process


def test_fidelity_finds_the_gain_and_lag_of_a_stream_against_the_exact_convolution():
    k = np.random.default_rng(0).normal(size=200) / 16
    assert fidelity(_stream(k), k)[:2] == (pytest.approx(1.0, abs=1e-6), 0)
    gain, lag, err = fidelity(_stream(k, 0.25, 37), k)
    assert gain == pytest.approx(0.25, abs=1e-6) and lag == 37 and err < 1e-5
    other = np.random.default_rng(1).normal(size=200) / 16  # not the kernel's shape: a large error is left
    assert fidelity(_stream(other), k)[2] > 0.3


def test_the_bench_times_pedalboard_beside_the_streamer_and_says_how_each_relates_to_the_convolution(capsys):
    import importlib.util

    assert importlib.util.find_spec("pedalboard"), "pedalboard is in the test extra: pip install -e '.[test]'"
    assert main(["bench", "engine", "--blocks", "128", "--seconds", "0.05", "--models", "fir1024"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("FIR 1024 taps") and " 128 " in line)
    cells = [c.strip() for c in row.split("|")]
    assert len(cells) == 6 and all("/" in c for c in cells[1:5]), row  # rtconv, naive, lfilter, pedalboard
    said = next(line for line in out.splitlines() if "against numpy.convolve" in line)
    assert "rtconv: gain 1.0000, lag 0" in said and "pedalboard.Convolution: gain " in said, said
