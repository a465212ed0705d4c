"""Numbers on the command line that no run can use are refused by argparse, in one line, before any work."""

from __future__ import annotations

import pytest

import rtconv
from rtconv.cli import main


@pytest.mark.parametrize("argv,message", [
    (["train", "sines", "--seed", "-1"], "argument --seed: expected a seed from 0 to 4294967295, got '-1'"),
    (["train", "sines", "--optimizer", "sgd", "--momentum", "-1"], "argument --momentum: expected a number of 0 or more"),
    (["train", "denoise", "--sample-rate", "7"], "argument --sample-rate: expected a sample rate from 1000 to 768000 Hz, got '7'"),
    (["data", "testset", "--seed", "-1"], "argument --seed: expected a seed from 0 to 4294967295"),
    (["bench", "vad", "--seed", "-3"], "argument --seed: expected a seed from 0 to 4294967295"),
    (["bench", "denoise", "--seed", "2e9x"], "argument --seed: expected a seed"),
    (["filter", "lowpass", "--cutoff", "1000", "--taps", "100000001", "-o", "f.safetensors"],
     "argument --taps: expected a whole number from 1 to 1048576, got '100000001'"),
    (["filter", "lowpass", "--cutoff", "1000", "-r", "100000000", "-o", "f.safetensors"],
     "argument --sample-rate/-r: expected a sample rate from 1000 to 768000 Hz"),
    (["filter", "lowpass", "--cutoff", "1000", "--window", "nosuch", "-o", "f.safetensors"],
     "argument --window: expected a scipy.signal window such as hamming, hann, blackman, or one with its parameter "
     "such as kaiser,8, got 'nosuch'"),
    (["filter", "lowpass", "--cutoff", "1000", "--window", "kaiser", "-o", "f.safetensors"], "got 'kaiser'"),
    (["train", "denoise", "--seconds", "100000"], "argument --seconds: expected a clip length above 0 and at most 600 seconds"),
    (["live", "-b", "1000000"], "argument --block-size/-b: expected a block of 1 to 16384 frames, got '1000000'"),
    (["gui", "-b", "100000"], "argument --block-size/-b: expected a block of 1 to 16384 frames"),
    (["export", "speech-band", "-b", "100000000"], "argument --block-size/-b: expected a whole number from 1 to 1048576"),
    # a test set of 100000 per cell is 9.6 million mixtures held in memory; 0 is a set with no grid
    (["data", "testset", "--per-cell", "100000"], "argument --per-cell: expected a number of mixtures per cell from 1 to 20"),
    (["bench", "denoise", "--per-cell", "0"], "argument --per-cell: expected a number of mixtures per cell from 1 to 20"),
    (["bench", "vad", "--per-cell", "-2"], "argument --per-cell: expected a number of mixtures per cell from 1 to 20"),
])
def test_a_number_no_run_can_use_is_refused_before_any_work(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err
    assert list(tmp_path.iterdir()) == []


def test_a_window_with_its_parameter_designs_the_filter(tmp_path, capsys):
    out = tmp_path / "k.safetensors"
    assert main(["filter", "lowpass", "--cutoff", "1000", "--taps", "201", "--window", "kaiser,8", "-o", str(out)]) == 0
    from scipy import signal

    want = signal.firwin(201, 1000, window=("kaiser", 8.0), fs=48000)
    assert abs(rtconv.load(out).kernel - want).max() < 1e-6


def test_live_checks_where_its_stats_go_before_it_opens_a_device(tmp_path, capsys):
    bad = tmp_path / "adir"
    bad.mkdir()
    assert main(["live", "--stats-json", str(bad), "--duration", "1"]) == 1
    assert capsys.readouterr().err.strip() == f"rtconv live: error: --stats-json {str(bad)!r} is a folder; give a file name in it."
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["live", "--stats-json", str(blocked / "s.json"), "--duration", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rtconv live: error: --stats-json {str(blocked / 's.json')!r}: its folder cannot be made (")
