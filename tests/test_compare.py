"""`rtconv compare`: a user's recordings through rtconv and its peers, written side by side and scored
(rtconv.compare, rtconv.cli.compare)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import soundfile as sf

import rtconv
from rtconv import compare
from rtconv.cli import main
from rtconv.files import audio_files

RATE = 48000


@pytest.fixture(scope="module")
def speech():
    from rtconv.train import speech as sp

    x = sp.synthesize(sp.utterances("test", 1, seed=11)[0], RATE)[: 2 * RATE]
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture
def pair(tmp_path, speech):
    """A clean recording and the same with noise, as float WAVs (compare writes floats too)."""
    noise = 0.03 * np.random.default_rng(3).standard_normal(len(speech)).astype(np.float32)
    (tmp_path / "clean").mkdir()
    (tmp_path / "noisy").mkdir()
    sf.write(tmp_path / "clean" / "talk.wav", speech, RATE, subtype="FLOAT")
    sf.write(tmp_path / "noisy" / "talk.wav", speech + noise, RATE, subtype="FLOAT")
    return tmp_path / "noisy" / "talk.wav", tmp_path / "clean" / "talk.wav"


@pytest.fixture
def fir(tmp_path):
    m = rtconv.FIR([1.0])
    m.sample_rate = RATE
    return str(rtconv.save(m, tmp_path / "identity.safetensors"))


def _py(code: str) -> str:
    """A --command word list that runs ``code`` in this interpreter with argv [.., input, output]."""
    return f"{sys.executable} -c '{code}' {{input}} {{output}}"


_DELAY = ("import sys, numpy as np, soundfile as sf; x, r = sf.read(sys.argv[1]); "
          "sf.write(sys.argv[2], np.concatenate([np.zeros(r // 100), x]), r, subtype=\"FLOAT\")")
_TO_24K = ("import sys, soundfile as sf, soxr; x, r = sf.read(sys.argv[1]); "
           "sf.write(sys.argv[2], soxr.resample(x, r, 24000), 24000, subtype=\"FLOAT\")")


def _one_error(err: str) -> str:
    lines = [s for s in err.splitlines() if "error" in s]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("rtconv compare: error: "), err
    return lines[0]


def test_every_system_writes_its_output_beside_the_others_and_rtconv_is_what_rtconv_process_writes(
        pair, tmp_path, capsys):
    noisy, _ = pair
    assert main(["compare", str(noisy)]) == 0
    out = capsys.readouterr().out
    folder = noisy.with_name("talk-compare")
    assert sorted(p.name for p in folder.iterdir()) == ["noisereduce.wav", "noisy.wav", "rnnoise.wav", "rtconv.wav"]
    for name in ("rtconv", "rnnoise", "noisereduce"):
        assert f"| {name} |" in out
    # what each would add live: the shipped model's 191 samples, RNNoise's frame and lag; noisereduce needs the file
    latency = {line.split("|")[1].strip(): line.split("|")[-3].strip() for line in out.splitlines()
               if line.startswith("| ") and not line.startswith("| system")}
    assert latency == {"noisy": "-", "rtconv": "4.0", "rnnoise": "30.0", "noisereduce": "offline"}
    x, _ = sf.read(noisy, dtype="float32")
    np.testing.assert_array_equal(sf.read(folder / "noisy.wav", dtype="float32")[0], x)
    assert main(["process", str(noisy), str(tmp_path / "processed.wav"), "--quiet"]) == 0
    want, _ = sf.read(tmp_path / "processed.wav", dtype="float32")
    got, rate = sf.read(folder / "rtconv.wav", dtype="float32")
    assert rate == RATE and got.shape == x.shape
    np.testing.assert_allclose(got, want, atol=2e-5)  # streamed there, offline here: equal to float rounding
    assert np.max(np.abs(got - x)) > 0.01  # and the denoiser did something
    # RNNoise's 20 ms output lag is removed: its output lines up with the input
    from rtconv.bench.heldout import measure_lag, rnnoise_lag

    assert rnnoise_lag() == 960
    assert measure_lag(x, sf.read(folder / "rnnoise.wav", dtype="float32")[0]) == 0
    # rtconv's own outputs: `rtconv process --recursive` over the folder later leaves them alone
    assert [p for p, _ in audio_files([noisy.parent], recursive=True).files] == [noisy]


def test_with_a_clean_reference_the_scores_are_the_output_s_si_sdr_and_its_improvement(pair, fir, tmp_path, capsys):
    noisy, clean = pair
    oracle = f"{sys.executable} -c 'import shutil, sys; shutil.copy(sys.argv[1], sys.argv[2])' {clean} {{output}} {{input}}"
    half = "sox {input} {output} vol 0.5"
    scores = tmp_path / "scores.json"
    assert main(["compare", str(noisy), "--clean", str(clean.parent), "-m", fir, "--no-rnnoise", "--no-noisereduce",
                 "--command", f"oracle={oracle}", "--command", f"half={half}", "--scores-only",
                 "--json", str(scores)]) == 0
    out = capsys.readouterr().out
    assert "SI-SDRi" in out and "PESQ" in out and "STOI" in out
    rows = {r["system"]: r for r in json.loads(scores.read_text())["rows"]}
    from rtconv.metrics import si_sdr_db

    c, _ = sf.read(clean, dtype="float32")
    x, _ = sf.read(noisy, dtype="float32")
    assert rows["noisy"]["si_sdr"] == pytest.approx(float(si_sdr_db(c, x)), abs=1e-3)
    assert rows["noisy"]["si_sdr_i"] == pytest.approx(0.0, abs=1e-6)
    assert rows["rtconv"]["si_sdr_i"] == pytest.approx(0.0, abs=1e-3)  # the identity filter changes nothing
    assert rows["half"]["si_sdr_i"] == pytest.approx(0.0, abs=0.05)  # scale-invariant: half as loud is as clean
    assert rows["half"]["loud_db"] == pytest.approx(-6.02, abs=0.05)
    assert rows["oracle"]["si_sdr"] > 60 and rows["oracle"]["pesq"] > 4.4 and rows["oracle"]["stoi"] > 0.99
    assert rows["noisy"]["pesq"] < 3.5
    assert not list(noisy.parent.glob("*-compare"))  # --scores-only writes no audio


def test_a_command_s_delay_and_rate_are_undone(pair, fir, capsys):
    noisy, _ = pair
    assert main(["compare", str(noisy), "-m", fir, "--no-rnnoise", "--no-noisereduce",
                 "--command", f"late={_py(_DELAY)}", "--command", f"r24k={_py(_TO_24K)}"]) == 0
    out = capsys.readouterr().out
    row = next(s for s in out.splitlines() if s.startswith("| late |"))
    assert row.split("|")[-4].strip() == "10.0"  # lag ms
    folder = noisy.with_name("talk-compare")
    x, _ = sf.read(noisy, dtype="float32")
    late, rate = sf.read(folder / "late.wav", dtype="float32")
    assert rate == RATE
    np.testing.assert_allclose(late, x, atol=2 ** -15 + 1e-6)  # the command reads 16-bit samples
    r24, rate = sf.read(folder / "r24k.wav", dtype="float32")
    assert rate == RATE and r24.shape == x.shape


def test_a_command_that_takes_an_output_folder_writes_its_file_in_outdir(pair, fir, capsys):
    noisy, _ = pair
    into = ("import sys, shutil, pathlib; d = pathlib.Path(sys.argv[2]); (d / \"run.log\").write_text(\"done\"); "
            "shutil.copy(sys.argv[1], d / (pathlib.Path(sys.argv[1]).stem + \"_df.wav\"))")
    copy = f"{sys.executable} -c '{into}' {{input}} {{outdir}}"
    nothing = f"{sys.executable} -c 'pass' {{input}} {{outdir}}"
    assert main(["compare", str(noisy), "-m", fir, "--no-rnnoise", "--no-noisereduce", "--scores-only",
                 "--command", f"folder={copy}", "--command", f"idle={nothing}"]) == 1
    cap = capsys.readouterr()
    row = next(s for s in cap.out.splitlines() if s.startswith("| folder |")).split("|")[2:-1]
    assert [abs(float(v)) for v in row[:4]] == pytest.approx([0, 0, 0, 0], abs=0.01)  # loud, quiet, >8k, lag
    assert "'idle' exited having written no audio file" in _one_error(cap.err)


def test_a_failing_command_is_one_line_the_other_rows_still_come_and_the_status_is_1(pair, fir, capsys):
    noisy, _ = pair
    bad = f"{sys.executable} -c 'import sys; sys.exit(\"no model found\")' {{input}} {{output}}"
    assert main(["compare", str(noisy), "-m", fir, "--no-rnnoise", "--no-noisereduce",
                 "--command", f"broken={bad}"]) == 1
    cap = capsys.readouterr()
    line = _one_error(cap.err)
    assert "'broken' failed with exit status 1 (no model found)" in line
    assert "| rtconv |" in cap.out and "| broken |" not in cap.out
    assert sorted(p.name for p in noisy.with_name("talk-compare").iterdir()) == ["noisy.wav", "rtconv.wav"]


@pytest.mark.parametrize("command, said", [
    ("deepfilter", "is not NAME=COMMAND"),
    ("x=", "is not NAME=COMMAND"),
    ("rnnoise=sox {input} {output}", "is a built-in system's"),
    ("two words=sox {input} {output}", "must be letters, digits"),
    ("y=sox {input} out.wav", "has no {output} or {outdir}"),
    ("v=sox in.wav {output}", "has no {input}"),
    ("z=sox '{input} {output}", "check its quotes"),
    ("w=no-such-program-here {input} {output}", "could not start 'no-such-program-here'"),
])
def test_a_bad_command_is_refused_in_one_sentence(pair, fir, capsys, command, said):
    noisy, _ = pair
    assert main(["compare", str(noisy), "-m", fir, "--no-rnnoise", "--no-noisereduce", "--command", command]) == 1
    assert said in _one_error(capsys.readouterr().err)


def test_references_pair_by_name_in_a_folder_and_a_wrong_one_is_refused(pair, fir, tmp_path, speech, capsys):
    noisy, clean = pair
    other = noisy.with_name("other.wav")
    sf.write(other, speech, RATE, subtype="FLOAT")
    sf.write(clean.with_name("other.flac"), speech, RATE)  # same name, another extension
    refs = compare.pair_references([noisy, other], clean.parent)
    assert refs == {noisy: clean, other: clean.with_name("other.flac")}
    clean.with_name("other.flac").unlink()
    assert main(["compare", str(noisy.parent), "--clean", str(clean.parent), "-m", fir, "--scores-only"]) == 1
    assert "no single clean reference for" in _one_error(capsys.readouterr().err)
    # a reference that is not the same recording (another length) is refused; the other file is still scored
    sf.write(clean.with_name("other.wav"), speech[: RATE], RATE, subtype="FLOAT")
    assert main(["compare", str(noisy.parent), "--clean", str(clean.parent), "-m", fir, "--scores-only",
                 "--no-rnnoise", "--no-noisereduce"]) == 1
    cap = capsys.readouterr()
    assert "is 1.00 s long" in _one_error(cap.err) and "talk.wav (2.00 s" in cap.out
    # a reference out of step with its noisy recording is scored, with a note saying by how much
    sf.write(clean.with_name("other.wav"), np.concatenate([speech[48:], np.zeros(48, np.float32)]), RATE,
             subtype="FLOAT")
    assert main(["compare", str(other), "--clean", str(clean.parent), "-m", fir, "--scores-only", "--no-rnnoise",
                 "--no-noisereduce"]) == 0
    assert "other.wav: the noisy recording lags its clean reference by 1.0 ms (48 samples)" in capsys.readouterr().err
    assert main(["compare", str(noisy), "--clean", str(clean.parent), "-m", fir, "--scores-only", "--no-rnnoise",
                 "--no-noisereduce"]) == 0
    assert "clean reference" not in capsys.readouterr().err  # aligned: nothing said
    # one clean file for two inputs is a usage mistake
    assert main(["compare", str(noisy), str(other), "--clean", str(clean), "-m", fir]) == 1
    assert "is one file for 2 inputs" in _one_error(capsys.readouterr().err)


def test_an_earlier_comparison_is_kept_unless_overwrite(pair, fir, capsys):
    noisy, _ = pair
    args = ["compare", str(noisy), "-m", fir, "--no-rnnoise", "--no-noisereduce"]
    assert main(args) == 0
    target = noisy.with_name("talk-compare") / "rtconv.wav"
    before = target.stat().st_mtime_ns
    assert main(args) == 1
    assert "exists from an earlier comparison; pass --overwrite" in _one_error(capsys.readouterr().err)
    assert target.stat().st_mtime_ns == before
    assert main(args + ["--overwrite"]) == 0


def test_stereo_is_compared_as_its_mono_mix_with_a_note(tmp_path, speech, fir, capsys):
    path = tmp_path / "duo.flac"
    sf.write(path, np.stack([speech, 0.5 * speech], axis=1), RATE)
    assert main(["compare", str(path), "-m", fir, "--no-rnnoise", "--no-noisereduce", "-o", str(tmp_path / "o")]) == 0
    assert "2 channels averaged to mono" in capsys.readouterr().err
    y, _ = sf.read(tmp_path / "o" / "duo" / "noisy.wav", dtype="float32")
    assert y.ndim == 1
    np.testing.assert_allclose(y, 0.75 * speech, atol=1e-4)  # FLAC is 16-bit


def test_a_recording_too_short_to_measure_is_refused_and_silence_is_scored_without_warnings(tmp_path, fir, capsys):
    sf.write(tmp_path / "blip.wav", np.full(4800, 0.1, np.float32), RATE)
    sf.write(tmp_path / "silence.wav", np.zeros(RATE, np.float32), RATE)
    assert main(["compare", str(tmp_path), "-m", fir, "--scores-only"]) == 1
    cap = capsys.readouterr()
    assert "'" + str(tmp_path / "blip.wav") + "' holds 0.100 s of audio; rtconv compare needs at least 0.5 s" in \
        _one_error(cap.err)
    assert "Warning" not in cap.err and "| noisereduce | - | - | - | " in cap.out


def test_rtconv_s_strength_and_both_directions_are_those_of_rtconv_process(pair, tmp_path, capsys):
    noisy, _ = pair
    assert main(["compare", str(noisy), "--atten-lim", "6", "--both-directions", "--no-rnnoise", "--no-noisereduce",
                 "-o", str(tmp_path / "o")]) == 0
    assert "rtconv runs with --atten-lim 6 --both-directions" in capsys.readouterr().err
    assert main(["process", str(noisy), str(tmp_path / "p.wav"), "--atten-lim", "6", "--both-directions",
                 "--quiet"]) == 0
    got, _ = sf.read(tmp_path / "o" / "talk" / "rtconv.wav", dtype="float32")
    np.testing.assert_allclose(got, sf.read(tmp_path / "p.wav", dtype="float32")[0], atol=2e-5)
    # the pauses lose 10.5 dB at full strength, at most 6 here
    quiet = {}
    for extra in ([], ["--atten-lim", "6"]):
        assert main(["compare", str(noisy), "--no-rnnoise", "--no-noisereduce", "--scores-only",
                     "--json", str(tmp_path / "s.json"), *extra]) == 0
        quiet[bool(extra)] = json.loads((tmp_path / "s.json").read_text())["rows"][1]["quiet_db"]
    assert quiet[False] < -9 and -6 <= quiet[True] < -3
    # a model without a strength is refused in one sentence
    fir = rtconv.FIR([1.0])
    fir.sample_rate = RATE
    path = str(rtconv.save(fir, tmp_path / "fir.safetensors"))
    assert main(["compare", str(noisy), "-m", path, "--atten-lim", "6"]) == 1
    assert "has no attenuation limit" in _one_error(capsys.readouterr().err)


def test_pesq_of_a_long_recording_is_the_length_weighted_mean_of_its_parts_not_a_crash(speech):
    """The pesq package crashes the interpreter on about two minutes at once; compare scores 30-s parts."""
    import soxr

    rng = np.random.default_rng(5)
    c = soxr.resample(np.tile(speech, 80), RATE, 16000).astype(np.float64)  # 160 s
    y = c + 0.02 * rng.standard_normal(len(c))
    whole = compare._pesq_segments(c, y)
    edges = np.linspace(0, len(c), 7).astype(int)  # 160 s in 6 parts of 26.7 s
    import pesq

    parts = [pesq.pesq(16000, c[a:b], y[a:b], "wb") for a, b in zip(edges[:-1], edges[1:])]
    assert whole == pytest.approx(np.mean(parts), abs=1e-9) and 1.0 < whole < 4.6


def test_a_recording_longer_than_compare_takes_is_refused_before_any_system_runs(tmp_path, fir, capsys, monkeypatch):
    monkeypatch.setattr(compare, "MAX_SECONDS", 1.0)
    path = tmp_path / "talk.wav"
    sf.write(path, np.zeros(2 * RATE, np.float32), RATE)
    assert main(["compare", str(path), "-m", fir]) == 1
    assert "rtconv compare holds every system's output in memory and takes up to" in _one_error(capsys.readouterr().err)
    assert not (tmp_path / "talk-compare").exists()


def test_several_recordings_end_with_their_means(tmp_path, speech, fir, capsys):
    for i, gain in enumerate((1.0, 0.5)):
        sf.write(tmp_path / f"r{i}.wav", gain * speech, RATE, subtype="FLOAT")
    assert main(["compare", str(tmp_path), "-m", fir, "--no-rnnoise", "--scores-only",
                 "--command", "half=sox {input} {output} vol 0.5"]) == 0
    out = capsys.readouterr().out
    mean = out.split("mean over 2 recording(s)")[1]
    assert "| half | -6.02 | -6.02 | -6.0" in mean and "| offline |" in mean  # noisereduce needs the whole file


def test_blind_outputs_are_letters_whose_key_names_the_system_that_made_each(pair, fir, tmp_path, capsys):
    noisy, _ = pair
    common = [str(noisy), "-m", fir, "--no-noisereduce", "--command", "half=sox -D {input} {output} vol 0.5"]  # -D: no dither
    assert main(["compare", *common, "-o", str(tmp_path / "named")]) == 0
    assert main(["compare", *common, "-o", str(tmp_path / "blind"), "--blind"]) == 0
    blind = tmp_path / "blind" / "talk"
    assert sorted(p.name for p in blind.iterdir()) == [".key.txt", "A.wav", "B.wav", "C.wav", "D.wav"]
    key = dict(line.split("\t") for line in (blind / ".key.txt").read_text().splitlines())
    assert sorted(key.values()) == ["half", "noisy", "rnnoise", "rtconv"]
    for letter, name in key.items():
        np.testing.assert_array_equal(sf.read(blind / letter)[0], sf.read(tmp_path / "named" / "talk" / f"{name}.wav")[0])
        with sf.SoundFile(tmp_path / "named" / "talk" / f"{name}.wav") as f:
            assert f"compare: {name}" in f.software
        with sf.SoundFile(blind / letter) as f:
            assert "compare:" not in f.software  # a blind file's tag does not tell
    assert "in a random order" in capsys.readouterr().out


@pytest.mark.parametrize("given, said", [("-", "reads files, not standard input"), ("nowhere.wav",
                                         "input 'nowhere.wav' does not exist; check the path.")])
def test_an_input_that_is_no_file_is_refused_before_the_model_loads(given, said, capsys, monkeypatch):
    import rtconv.checkpoint

    monkeypatch.setattr(rtconv.checkpoint, "load", lambda *a: pytest.fail("the model was loaded"))
    assert main(["compare", given]) == 1
    assert said in _one_error(capsys.readouterr().err)


def test_outputs_that_cannot_be_written_are_refused_before_anything_runs(pair, fir, tmp_path, speech, capsys):
    noisy, _ = pair
    twin = tmp_path / "other" / "talk.flac"
    twin.parent.mkdir()
    sf.write(twin, speech, RATE)
    assert main(["compare", str(noisy), str(twin), "-m", fir, "-o", str(tmp_path / "o")]) == 1
    assert "would both write to" in _one_error(capsys.readouterr().err)
    noisy.with_name("talk-compare").write_text("not a folder")
    assert main(["compare", str(noisy), "-m", fir]) == 1
    assert "is a file; move it or choose -o DIR" in _one_error(capsys.readouterr().err)
    many = [a for i in range(24) for a in ("--command", f"c{i}=sox {{input}} {{output}}")]
    assert main(["compare", str(noisy), "-m", fir, "--blind", "-o", str(tmp_path / "b"), *many]) == 1
    assert "--blind names the outputs A to Z, and this comparison has 28" in _one_error(capsys.readouterr().err)
    assert not (tmp_path / "o").exists() and not (tmp_path / "b").exists()


def test_a_missing_peer_package_is_a_note_and_its_row_is_left_out(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "noisereduce" else real(name, *a))
    systems, notes = compare.systems(None, rnnoise=True, noisereduce=True)
    assert list(systems) == ["noisy", "rnnoise"]
    assert notes == ["noisereduce is not installed (pip install noisereduce, or rtconv[bench]); its row is left out."]


def test_a_model_that_is_not_one_in_one_out_is_refused(pair, tmp_path, capsys):
    m = rtconv.MimoCNN(taps=(3,), features=(2, 1))
    m.sample_rate = RATE
    path = str(rtconv.save(m, tmp_path / "two-in.safetensors"))
    assert main(["compare", str(pair[0]), "-m", path]) == 1
    assert "has 2 input(s) and 1 output(s)" in _one_error(capsys.readouterr().err)
