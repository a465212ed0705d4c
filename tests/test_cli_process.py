"""`rtconv process`, `rtconv info` and `rtconv filter` from the command line."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

import rtconv
from rtconv import designs
from rtconv.cli import main


def _wav(path, frames=4800, channels=1, rate=48000, subtype="PCM_16"):
    x = 0.1 * np.random.default_rng(frames).standard_normal((frames, channels))
    sf.write(str(path), x, rate, subtype=subtype)
    return path


@pytest.fixture
def fir(tmp_path):
    m = rtconv.FIR([0.5, 0.5])
    m.sample_rate = 48000
    return rtconv.save(m, tmp_path / "avg.safetensors")


def _errors(err):
    return [line for line in err.splitlines() if line.startswith("rtconv process: error:")]


def test_process_one_file_to_a_derived_name_with_a_summary(tmp_path, fir, capsys):
    src = _wav(tmp_path / "talk.wav")
    assert main(["process", str(src), "--model", str(fir)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "talk-filtered.wav").is_file()
    assert "talk.wav -> " in out and "0.10 s, 48000 Hz" in out and "x real time" in out


def test_second_path_that_does_not_exist_is_the_output(tmp_path, fir, capsys):
    src = _wav(tmp_path / "a.wav")
    assert main(["process", str(src), str(tmp_path / "clean.flac"), "-m", str(fir), "-q"]) == 0
    assert sf.info(str(tmp_path / "clean.flac")).format == "FLAC"
    assert capsys.readouterr().out == ""


def test_the_same_in_out_command_run_again_says_the_output_exists_instead_of_processing_it(tmp_path, fir, capsys):
    """The output of the first run exists now; it used to be taken as a second input (in-filtered.wav and
    clean-filtered.flac written, exit 0)."""
    src, out = _wav(tmp_path / "in.wav"), tmp_path / "clean.flac"
    argv = ["process", str(src), str(out), "-m", str(fir), "-q"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 1
    (err,) = _errors(capsys.readouterr().err)
    assert f"output {str(out)!r} already exists; pass --overwrite" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avg.safetensors", "clean.flac", "in.wav"]
    out.write_bytes(b"")  # not a file rtconv wrote: a second input again, never overwritten with the first's output
    assert main(argv + ["--overwrite"]) == 1  # (it is not audio: that file fails, the first is processed)
    assert out.read_bytes() == b"" and (tmp_path / "in-filtered.wav").is_file()
    (tmp_path / "in-filtered.wav").unlink()
    out.unlink()
    assert main(argv) == 0 and main(argv + ["--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avg.safetensors", "clean.flac", "in.wav"]


def test_an_existing_second_file_rtconv_did_not_write_is_a_second_input(tmp_path, fir, capsys):
    a, b = _wav(tmp_path / "a.wav"), _wav(tmp_path / "b.wav", frames=2400)
    assert main(["process", str(a), str(b), "-m", str(fir), "-q"]) == 0
    assert (tmp_path / "a-filtered.wav").is_file() and (tmp_path / "b-filtered.wav").is_file()
    assert sf.info(str(b)).frames == 2400  # the user's file untouched


def test_an_output_folder_named_with_a_slash_is_made_and_removed_again_when_nothing_went_in(tmp_path, fir, capsys):
    """The README's batch example (-o cleaned/) failed on a fresh checkout: the folder had to exist."""
    folder = tmp_path / "in"
    folder.mkdir()
    _wav(folder / "one.wav")
    new = tmp_path / "cleaned" / "today"
    assert main(["process", str(folder), "-o", f"{new}/", "-m", str(fir), "-q"]) == 0
    assert sorted(p.name for p in new.iterdir()) == ["one-filtered.wav"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["process", str(empty), "-o", f"{tmp_path / 'made'}/sub/", "-m", str(fir), "-q"]) == 1
    assert "no audio files found" in _errors(capsys.readouterr().err)[0]
    assert not (tmp_path / "made").exists()
    assert main(["process", str(folder / "one.wav"), "-o", f"{folder / 'one.wav'}/", "-m", str(fir), "-q"]) == 1
    assert "is a file, not a folder" in _errors(capsys.readouterr().err)[0]


@pytest.mark.parametrize("case", ["output name", "derived name", "temporary name"])
def test_a_name_too_long_for_the_file_system_is_one_sentence(tmp_path, fir, case):
    """Each raised OSError: File name too long (a traceback) or blamed the folder."""
    src = _wav(tmp_path / "a.wav")
    if case == "output name":
        argv = [str(src), str(tmp_path / ("x" * 300 + ".wav"))]
    else:  # the input's name fits; "<stem>-filtered.wav" does not (245), or ".<name>.<8>.part" does not (232)
        src = src.rename(tmp_path / ("b" * (245 if case == "derived name" else 232) + ".wav"))
        argv = [str(src)]
    r = subprocess.run([sys.executable, "-m", "rtconv", "process", *argv, "-m", str(fir), "-q"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("rtconv process: error: ") and "too long" in line
    if case == "temporary name":
        assert "240 characters or fewer" in line and "output folder" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["avg.safetensors", src.name])


def test_folder_with_one_bad_file_processes_the_rest_and_exits_1(tmp_path, fir, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    _wav(folder / "one.wav")
    _wav(folder / "two.flac")
    (folder / "broken.wav").write_text("not audio")
    (folder / "readme.txt").write_text("ignored: not an audio extension")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["process", str(folder), "-o", str(out), "-m", str(fir), "-b", "64"]) == 1
    cap = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["one-filtered.wav", "two-filtered.flac"]
    errs = _errors(cap.err)
    assert len(errs) == 1 and "broken.wav' is a text file, not audio" in errs[0]
    assert "1 of 3 file(s) failed" in cap.err


def test_parallel_jobs_give_the_same_output_as_serial(tmp_path, fir, capsys):
    for name in ("a", "b", "c"):
        _wav(tmp_path / f"{name}.wav", frames=3000 + len(name))
    serial, par = tmp_path / "serial", tmp_path / "par"
    serial.mkdir(), par.mkdir()
    files = [str(tmp_path / f"{n}.wav") for n in "abc"]
    assert main(["process", *files, "-o", str(serial), "-m", str(fir), "-q"]) == 0
    assert main(["process", *files, "-o", str(par), "-m", str(fir), "-q", "--jobs", "2"]) == 0
    for n in "abc":
        a = sf.read(str(serial / f"{n}-filtered.wav"))[0]
        b = sf.read(str(par / f"{n}-filtered.wav"))[0]
        np.testing.assert_array_equal(a, b)


def test_several_inputs_need_an_output_folder(tmp_path, fir, capsys):
    a, b = _wav(tmp_path / "a.wav"), _wav(tmp_path / "b.wav")
    assert main(["process", str(a), str(b), "-o", str(tmp_path / "x.wav"), "-m", str(fir)]) == 1
    assert "2 inputs need an existing output folder" in capsys.readouterr().err


def test_bad_model_fails_once_in_one_line(tmp_path, capsys):
    src = _wav(tmp_path / "a.wav")
    assert main(["process", str(src), "-m", str(tmp_path / "none.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.safetensors' does not exist" in err


def test_resampling_up_is_a_note_after_the_output_and_nan_a_warning(tmp_path, fir, capsys):
    x = np.zeros((800, 1), np.float32)
    x[3] = np.nan
    sf.write(str(tmp_path / "n.wav"), x, 16000, subtype="FLOAT")
    assert main(["process", str(tmp_path / "n.wav"), "-m", str(fir), "--offline"]) == 0
    out, err = capsys.readouterr()
    assert "note: n.wav: resampled 16000 Hz -> 48000 Hz" in err and "warning: n.wav: resampled" not in err
    assert "warning: n.wav: 1 NaN/Inf input sample(s) were replaced by silence" in err
    # the note comes with the file's result, not before the output checks
    assert err.index("NaN/Inf") < err.index("note: n.wav: resampled")


def test_resampling_down_is_a_warning_because_content_is_removed(tmp_path, fir, capsys):
    sf.write(str(tmp_path / "h.wav"), np.zeros((9600, 1), np.float32), 96000, subtype="FLOAT")
    assert main(["process", str(tmp_path / "h.wav"), "-m", str(fir)]) == 0
    err = capsys.readouterr().err
    assert "warning: h.wav: resampled 96000 Hz -> 48000 Hz" in err and "content above 24000 Hz was removed" in err


def test_keep_latency_writes_the_delayed_stream(tmp_path, capsys):
    k = np.zeros(5)
    k[2] = 1.0
    model = rtconv.save(rtconv.FIR(k, padding="same"), tmp_path / "d.safetensors")
    src = _wav(tmp_path / "a.wav", frames=100, subtype="FLOAT")
    assert main(["process", str(src), str(tmp_path / "raw.wav"), "-m", str(model), "--keep-latency"]) == 0
    x, y = sf.read(str(src))[0], sf.read(str(tmp_path / "raw.wav"))[0]
    assert len(y) == 102 and np.allclose(y[2:], x)


def test_process_runs_as_a_real_command_without_traceback(tmp_path):
    (tmp_path / "t.wav").write_text("text")
    r = subprocess.run([sys.executable, "-m", "rtconv", "process", str(tmp_path / "t.wav")],
                       capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 1
    assert r.stderr.strip().startswith("rtconv process: error: input file") and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "t.wav"]


# --- rtconv info -----------------------------------------------------------------


def test_info_prints_latency_receptive_field_and_layer_shapes(tmp_path, capsys):
    path = rtconv.save(rtconv.MimoCNN([40, 40], [1, 5, 1], padding="same"), tmp_path / "m.safetensors",
                       sample_rate=48000, task="denoise", provenance={"epochs": 7}, metrics={"snr_db": 9.5})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "latency         38 samples (0.79 ms at 48000 Hz)" in out
    assert "receptive field 79 samples" in out and "parameters      406" in out
    assert "weight (5, 1, 40)" in out and "weight (1, 5, 40)" in out
    assert "epochs" in out and "snr_db" in out and "task            denoise" in out


def test_info_json_is_the_metadata_plus_tensor_shapes(tmp_path, capsys):
    path = rtconv.save(rtconv.FIR([1.0, 2.0]), tmp_path / "f.safetensors")
    assert main(["info", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["architecture"]["name"] == "fir" and doc["tensors"]["body.0.weight"]["shape"] == [1, 1, 2]


@pytest.mark.parametrize("model,expected", [
    ("tiny", "shipped tiny"),                    # a shipped model's name
    ("tiny.safetensors", "shipped tiny"),        # ... with its suffix
    ("here.safetensors", "in the folder"),       # a file in the current folder
    ("{tmp}/elsewhere.safetensors", "by path"),  # a path
    ("here", "not found"),                       # a bare name that is neither: refused by both, same file named
    (None, "shipped default"),                   # nothing: the default model
])
def test_info_and_process_model_find_the_same_checkpoint(tmp_path, monkeypatch, capsys, model, expected):
    shipped, work = tmp_path / "models", tmp_path / "work"
    shipped.mkdir()
    work.mkdir()
    for name, path in [("shipped default", shipped / "speech-band.safetensors"),
                       ("shipped tiny", shipped / "tiny.safetensors"),
                       ("in the folder", work / "here.safetensors"),
                       ("by path", tmp_path / "elsewhere.safetensors")]:
        rtconv.save(rtconv.FIR([0.5, 0.5]), path, sample_rate=48000, name=name)
    monkeypatch.setenv("RTCONV_MODELS", str(shipped))
    monkeypatch.chdir(work)
    arg = [] if model is None else [model.format(tmp=tmp_path)]
    src = _wav(tmp_path / "talk.wav")

    info = main(["info", *arg, "--json"])
    info_out, info_err = capsys.readouterr()
    process = main(["process", str(src), str(tmp_path / "out.wav"), *(["--model", *arg] if arg else [])])
    process_out, process_err = capsys.readouterr()

    if expected == "not found":
        assert info == process == 1
        assert info_err.split("error: ", 1)[1] == process_err.split("error: ", 1)[1]
        assert "'here'" in info_err and "tiny" in info_err  # the missing name, and the shipped ones to choose from
    else:
        assert info == process == 0
        assert json.loads(info_out)["name"] == expected
        assert f", {expected}, " in process_out


def test_info_refuses_a_non_checkpoint_in_one_line(tmp_path, capsys):
    (tmp_path / "x.safetensors").write_text("hello")
    assert main(["info", str(tmp_path / "x.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("rtconv info: error: ") and "not a safetensors file" in err and "\n" not in err


# --- rtconv filter ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["lowpass", "--cutoff", "2000", "--taps", "101", "--sample-rate", "48000"], designs.lowpass(2000, 101, 48000)),
        (["highpass", "--cutoff", "80", "--taps", "255"], designs.highpass(80, 255, 48000)),
        (["bandpass", "--cutoff", "300", "3400", "--taps", "51", "-r", "8000"], designs.bandpass(300, 3400, 51, 8000)),
        (["moving-average", "--taps", "8"], designs.moving_average(8)),
        (["edge"], designs.edge()),
    ],
)
def test_filter_writes_the_designed_kernel(tmp_path, capsys, argv, expected):
    out = tmp_path / "f.safetensors"
    assert main(["filter", *argv, "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    model = rtconv.load(out)
    np.testing.assert_allclose(model.kernel, expected.kernel, rtol=1e-6, atol=1e-9)
    assert model.sample_rate == expected.sample_rate and model.metadata["task"] == "filter"
    assert model.metadata["provenance"]["design"]["kind"] == argv[0]
    # linear phase defaults to --padding same: the group delay is declared as latency (rtconv filter's docs)
    assert model.latency == (len(expected.kernel) - 1) // 2


def test_filter_same_padding_declares_the_group_delay_as_latency(tmp_path, capsys):
    out = tmp_path / "f.safetensors"
    assert main(["filter", "lowpass", "--cutoff", "1000", "--taps", "21", "--padding", "same", "-o", str(out)]) == 0
    assert "latency 10 samples" in capsys.readouterr().out
    assert rtconv.load(out).latency == 10


@pytest.mark.parametrize(
    "argv,message",
    [
        (["lowpass", "--cutoff", "30000"], "strictly between 0 and the Nyquist frequency 24000 Hz"),
        (["bandpass", "--cutoff", "3000", "300"], "must be below the high cutoff"),
        (["highpass", "--cutoff", "100", "--taps", "100"], "needs an odd number of taps"),
    ],
)
def test_filter_rejects_impossible_designs_in_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "f.safetensors"
    assert main(["filter", *argv, "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not out.exists()


def test_filter_usage_errors_exit_2(tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["filter", "lowpass", "-o", str(tmp_path / "f.safetensors")])  # --cutoff missing
    assert e.value.code == 2


@pytest.mark.parametrize("ext", ["flac", "mp3"])
def test_processing_a_folder_twice_skips_its_own_outputs_and_keeps_tags(tmp_path, fir, capsys, ext):
    src = tmp_path / f"take.{ext}"
    with sf.SoundFile(str(src), "w", 48000, 1, format=ext.upper()) as f:
        f.title, f.artist = "Take 1", "Someone"
        if ext == "mp3":
            f.comment = "first take"
        f.write(np.zeros(4800))
    assert main(["process", str(tmp_path), "-m", str(fir), "-q"]) == 0
    with sf.SoundFile(str(tmp_path / f"take-filtered.{ext}")) as f:
        assert (f.title, f.artist) == ("Take 1", "Someone")
        # MP3 keeps no software tag (libsndfile drops it): there the comment carries the mark, after the input's
        mark = f.software if ext == "flac" else f.comment.removeprefix("first take [").removesuffix("]")
        assert mark.startswith("rtconv process 0") and "avg" in mark
    assert main(["process", str(tmp_path), "-m", str(fir), "--overwrite"]) == 0
    cap = capsys.readouterr()
    assert f"skipped 1 file(s) that rtconv wrote (take-filtered.{ext})" in cap.err
    assert sorted(p.name for p in tmp_path.glob(f"*.{ext}")) == [f"take-filtered.{ext}", f"take.{ext}"]


@pytest.mark.parametrize("fmt", ["W64", "AU", "VOC"])
def test_a_folder_processed_twice_skips_its_own_outputs_in_formats_without_tags(tmp_path, fir, capsys, fmt):
    """AU, W64, VOC... keep no software tag: the second run made take-filtered-filtered.au, and failed."""
    ext = fmt.lower()
    sf.write(str(tmp_path / f"take.{ext}"), np.zeros(4800), 48000, format=fmt)
    sf.write(str(tmp_path / f"take-2.{ext}"), np.zeros(4800), 48000, format=fmt)  # a user's name with a dash: kept
    sf.write(str(tmp_path / f"song-filtered.{ext}"), np.zeros(4800), 48000, format=fmt)  # no 'song.*' beside it: kept
    assert main(["process", str(tmp_path), "-m", str(fir), "-q"]) == 0
    assert main(["process", str(tmp_path), "-m", str(fir), "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert (f"skipped 3 file(s) named as rtconv's outputs beside their inputs (song-filtered-filtered.{ext}, "
            f"take-2-filtered.{ext}, take-filtered.{ext}), in formats that keep no tag to tell; name them explicitly "
            "to process them") in err
    assert sorted(p.name for p in tmp_path.glob(f"*.{ext}")) == sorted(
        f"{n}.{ext}" for n in ("take", "take-filtered", "take-2", "take-2-filtered", "song-filtered",
                               "song-filtered-filtered"))
    # named explicitly, an output is processed like any file
    assert main(["process", str(tmp_path / f"take-filtered.{ext}"), "-m", str(fir), "-q"]) == 0
    assert (tmp_path / f"take-filtered-filtered.{ext}").exists()


@pytest.mark.parametrize("fmt", ["W64", "AU"])
def test_in_out_run_twice_in_a_format_without_tags_says_the_output_exists(tmp_path, fir, capsys, fmt):
    """`rtconv process x.au x-filtered.au` again read the output as a second input: it wrote
    x-filtered-filtered.au beside an error, where a WAV's mark made it say the output exists."""
    ext = fmt.lower()
    src, out = tmp_path / f"x.{ext}", tmp_path / f"x-filtered.{ext}"
    sf.write(str(src), np.zeros(4800), 48000, format=fmt)
    assert main(["process", str(src), str(out), "-m", str(fir), "-q"]) == 0
    capsys.readouterr()
    assert main(["process", str(src), str(out), "-m", str(fir), "-q"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"rtconv process: error: output {str(out)!r} already exists; pass --overwrite to replace it, "
        "--skip-existing to keep it, or choose another name.")
    assert main(["process", str(src), str(out), "-m", str(fir), "-q", "--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.glob(f"*.{ext}")) == [f"x-filtered.{ext}", f"x.{ext}"]


def test_a_wav_cut_short_is_processed_with_a_warning_on_stderr_naming_the_file_and_both_lengths(tmp_path, fir, capsys):
    """A recording stopped by a crash (its header promises 48000 frames, the file holds 28000) went through
    `rtconv process` without a word: libsndfile reads what is there and says so only in its log."""
    src = tmp_path / "take.wav"
    sf.write(str(src), np.full((48000, 2), 0.25), 48000, subtype="PCM_16")
    with open(src, "r+b") as f:
        f.truncate(src.stat().st_size - 20000 * 4)
    assert main(["process", str(src), "-m", str(fir), "-q"]) == 0
    assert capsys.readouterr().err.strip() == (
        "rtconv process: warning: take.wav: the file is cut short: its header announces 1.00 s (48000 frames) "
        "and it holds 0.58 s (28000); what it holds was processed (a recording stopped by a crash, or a copy "
        "not finished?)")
    assert sf.info(str(tmp_path / "take-filtered.wav")).frames == 28000  # all it holds, nothing lost


def test_bench_process_prints_every_case_and_both_targets(capsys):
    assert main(["bench", "process", "--seconds", "1", "--repeat", "1", "--blocks", "1024,default,512"]) == 0
    out = capsys.readouterr().out
    for case in ("forward (in memory)", "process --offline", "process -b 512", "process -b 1024"):
        assert out.count(case) == 3, out  # the shipped denoiser, MimoCNN and FIR
    assert out.count("process -b 16384 (default)") == 2 and out.count("process -b 65536 (default)") == 1
    assert "target: MimoCNN `rtconv process` (default block) >= 300x real time" in out
    assert "target: streaming -b 512 within 2x of --offline" in out
    assert "MimoCNN [40,40]/[1,5,1]: default block (16384): " in out and "x the speed of -b 1024, " in out


def test_bench_process_refuses_a_bad_block_list(capsys):
    assert main(["bench", "process", "--seconds", "1", "--blocks", "512,zero"]) == 2
    assert "--blocks takes positive frame counts or 'default', got 'zero'" in capsys.readouterr().err


def test_bench_process_batch_compares_jobs_side_by_side(capsys, monkeypatch):
    import rtconv.bench.process as bench

    runs = []
    monkeypatch.setattr(bench.subprocess, "run", lambda argv, check: runs.append(argv))  # no timing asserted
    assert main(["bench", "process", "--batch", "--repeat", "1", "--jobs", "2,4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["files", "-b", "1024", "--jobs", "1", "--jobs", "1", "--jobs", "2", "--jobs", "4"]
    assert out[2].startswith("20 x 2 s") and out[4].startswith("8 x 18 s") and out[6].startswith("70 x 18 s")
    assert "speed vs --jobs 1" in out[3] and len(out) == 8
    assert len(runs) == 12 and runs[3][-2:] == ["--jobs", "4"] and runs[0][-2:] == ["-b", "1024"]


def test_process_cli_block_size_defaults_to_the_files_choice_per_model(tmp_path, fir, capsys):
    with pytest.raises(SystemExit):
        main(["process", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "frames per block handed to the streamer (default: the fastest for the model, 16384" in help_text
    src = _wav(tmp_path / "a.wav")
    assert main(["process", str(src), "-m", str(fir)]) == 0
    assert "streamed in 16384-frame blocks" in capsys.readouterr().out
    assert main(["process", str(src), "-m", str(fir), "-b", "256", "--overwrite"]) == 0
    assert "streamed in 256-frame blocks" in capsys.readouterr().out


def _long_run(tmp_path, *extra, files=1, seconds=600):
    """Start `rtconv process` on long files through a long FIR; return (process, output folder)."""
    rate = 48000
    src = tmp_path / "in"
    src.mkdir()
    x = (0.1 * np.random.default_rng(0).standard_normal(rate * seconds)).astype(np.float32)
    for i in range(files):
        sf.write(str(src / f"long{i}.wav"), x, rate, subtype="PCM_16")
    fir = tmp_path / "fir.safetensors"
    rtconv.save(rtconv.FIR(np.hanning(2001) / 1000), fir, sample_rate=rate)
    out = tmp_path / "out"
    out.mkdir()

    def _ignore_sigint():  # as a shell does for a background command: the CLI must still stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    p = subprocess.Popen([sys.executable, "-m", "rtconv", "process", str(src), "-o", str(out), "-m", str(fir),
                          "-b", "128", "--quiet", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=_ignore_sigint, start_new_session=True)
    return p, out


def _wait_for_temporaries(p, out, count=1):
    deadline = time.monotonic() + 120
    while len(list(out.glob(".*.part"))) < count and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert p.poll() is None, "the run ended before it could be stopped; make the input longer"
    time.sleep(0.3)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stopped_run_leaves_no_partial_output_and_exits_128_plus_the_signal(tmp_path, sig):
    p, out = _long_run(tmp_path)
    _wait_for_temporaries(p, out)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    name = signal.Signals(sig).name
    assert p.returncode == 128 + sig, (p.returncode, err)
    assert err.startswith(f"rtconv process: stopped by {name} (") and err.count("\n") == 1, err
    assert "no partial output was left." in err and "Traceback" not in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("sig,group", [(signal.SIGHUP, False), (signal.SIGINT, True), (signal.SIGTERM, True)])
def test_a_stopped_parallel_run_leaves_no_partial_output_in_any_worker(tmp_path, sig, group):
    # group: Ctrl-C and a closed terminal reach every process of the job, workers included
    p, out = _long_run(tmp_path, "--jobs", "2", files=2, seconds=300)
    _wait_for_temporaries(p, out, count=2)  # both processes are writing
    (os.killpg(p.pid, sig) if group else p.send_signal(sig))
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, (p.returncode, err)
    assert err.startswith(f"rtconv process: stopped by {signal.Signals(sig).name} (") and err.count("\n") == 1, err
    assert "Traceback" not in err
    time.sleep(0.5)  # the workers are gone with the parent: nothing may appear later either
    assert list(out.iterdir()) == []


def test_the_temporary_file_of_a_killed_run_is_removed_by_the_next_run(tmp_path, capsys):
    p, out = _long_run(tmp_path)
    _wait_for_temporaries(p, out)
    p.kill()  # SIGKILL: no clean-up possible
    p.communicate(timeout=60)
    (stale,) = out.glob(".*.part")
    assert stale.name.startswith(".long0-filtered.wav.")
    os.utime(stale, (time.time() - 60, time.time() - 60))  # a later run, as seen by the file's age
    other = out / ".notes.txt.abcdefgh.part"  # not a temporary of this output: kept
    other.write_text("x")
    src = tmp_path / "in" / "long0.wav"
    sf.write(str(src), np.zeros((4800, 1), np.float32), 48000)  # a short file this time
    assert main(["process", str(src), "-o", str(out), "-m", str(tmp_path / "fir.safetensors")]) == 0
    err = capsys.readouterr().err
    assert f"removed 1 temporary file(s) an interrupted run had left for this output ({stale.name})" in err
    assert sorted(f.name for f in out.iterdir()) == [".notes.txt.abcdefgh.part", "long0-filtered.wav"]


def test_closing_the_terminal_stops_the_run_and_cleans_up(tmp_path):
    # the real thing: a run on a pseudo-terminal (progress bar shown) whose terminal goes away
    import pty
    import select

    rate = 48000
    src = tmp_path / "long.wav"
    sf.write(str(src), (0.1 * np.random.default_rng(0).standard_normal(rate * 600)).astype(np.float32), rate,
             subtype="PCM_16")
    fir = tmp_path / "fir.safetensors"
    rtconv.save(rtconv.FIR(np.hanning(2001) / 1000), fir, sample_rate=rate)
    pid, fd = pty.fork()
    if pid == 0:  # the child: session leader on the new terminal, 120 columns wide
        import fcntl
        import struct
        import termios

        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.execv(sys.executable, [sys.executable, "-m", "rtconv", "process", str(src), str(tmp_path / "out.wav"),
                                  "-m", str(fir), "-b", "128"])
    seen = b""
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.wav.*.part")) and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            seen += os.read(fd, 65536)
    time.sleep(0.5)
    if select.select([fd], [], [], 0.05)[0]:
        seen += os.read(fd, 65536)
    os.close(fd)  # the terminal window closes: the kernel sends SIGHUP
    _, status = os.waitpid(pid, 0)
    assert b"of 0:10:00 audio" in seen, seen  # the progress bar counted audio time
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGHUP
    assert sorted(f.name for f in tmp_path.iterdir()) == ["fir.safetensors", "long.wav"]


def test_no_prime_starts_a_recurrent_model_from_silence(tmp_path):
    from rtconv.files import process_array

    torch.manual_seed(3)
    model = rtconv.build("framed_denoiser", {"channels": 8, "blocks": 1, "window": 32, "hop": 16,
                                             "learn_filterbank": False, "gru": 4}).eval()
    path = tmp_path / "gru.safetensors"
    rtconv.save(model, path, name="gru", task="denoise")
    x = (np.random.default_rng(5).standard_normal(16000) * 0.1).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="FLOAT")
    for flags, prime in (([], None), (["--no-prime"], False)):
        out = tmp_path / f"out{len(flags)}.wav"
        assert main(["process", str(tmp_path / "in.wav"), "-o", str(out), "-m", str(path), "--quiet", *flags]) == 0
        y, _ = sf.read(out, dtype="float32")
        # the checkpoint, as the command loads it: a denoiser's input is DC-blocked
        np.testing.assert_allclose(y, process_array(x, 16000, rtconv.load(path), prime=prime)[:, 0], atol=1e-6)
    assert np.abs(sf.read(tmp_path / "out0.wav")[0] - sf.read(tmp_path / "out1.wav")[0]).max() > 5e-5


def test_inputs_after_an_option_are_inputs_too_and_an_unknown_option_is_still_refused(tmp_path, fir, capsys):
    a, b, c = (_wav(tmp_path / f"{n}.wav") for n in "abc")
    assert main(["process", str(a), "-m", str(fir), str(b), "-q", str(c)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*-filtered.wav")) == ["a-filtered.wav", "b-filtered.wav",
                                                                       "c-filtered.wav"]
    with pytest.raises(SystemExit) as e:
        main(["process", str(a), "--no-such-option", str(b)])
    assert e.value.code == 2 and "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_a_flac_cut_short_is_processed_with_the_warning_a_wav_gets(tmp_path, fir, capsys):
    """`rtconv process` refused a FLAC cut short whole ("corrupt after 0 frames ... nothing was written"), losing
    all of a crashed recording; it now keeps every block that decodes and says what is missing, as for a WAV."""
    src = tmp_path / "take.flac"
    x = np.full((48000, 2), 0.25)
    sf.write(str(src), x, 48000, subtype="PCM_16")
    with open(src, "r+b") as f:
        f.truncate(src.stat().st_size // 2)
    assert main(["process", str(src), "-m", str(fir), "-q"]) == 0
    out = tmp_path / "take-filtered.flac"
    held = sf.info(str(out)).frames
    assert 10000 < held < 48000
    assert capsys.readouterr().err.strip() == (
        f"rtconv process: warning: take.flac: the file is cut short: its header announces 1.00 s (48000 frames) "
        f"and it holds {held / 48000:.2f} s ({held}); what it holds was processed (a recording stopped by a "
        "crash, or a copy not finished?)")


@pytest.mark.parametrize("ext", ["flac", "mp3"])
def test_the_progress_bar_of_a_file_cut_short_counts_the_audio_it_holds_and_ends_at_100_percent(
        tmp_path, fir, monkeypatch, ext):
    """The bar's total was the length the header announces (3.00 s), read before the file was: a FLAC or MP3
    cut short finished at that total with only the audio it holds counted as done, so its time and speed
    were the header's; the reader's length corrects it from the first chunk on."""
    import rtconv.cli.process as process
    import rtconv.files as files

    bars = []

    def bar(*a, **kw):
        bars.append(audio_progress_bar(*a, **kw))
        return bars[-1]

    audio_progress_bar = files.audio_progress_bar
    monkeypatch.setattr(files, "audio_progress_bar", bar)
    monkeypatch.setattr(process, "_stderr_tty", lambda: True)
    src = tmp_path / f"take.{ext}"
    sf.write(str(src), np.full((3 * 48000, 2), 0.25), 48000)
    with open(src, "r+b") as f:
        f.truncate(src.stat().st_size * 6 // 10)
    out = tmp_path / "out.wav"
    assert main(["process", str(src), str(out), "-m", str(fir)]) == 0
    held = sf.info(str(out)).frames
    assert 48000 < held < 2 * 48000
    assert len(bars) == 1 and bars[0].total == pytest.approx(held / 48000) and bars[0].n == pytest.approx(bars[0].total)


@pytest.mark.parametrize("harm", ["cut short", "damaged"])
def test_an_mp3_cut_short_or_damaged_gets_rtconv_s_sentences_on_stderr_and_none_of_libmpg123_s(tmp_path, fir, harm):
    """libmpg123 printed its own diagnostics from C straight to stderr ("Warning: Xing stream size off...",
    "Note: Trying to resync...", "[src/libmpg123/parse.c:...] error: Giving up resync..."), several times over,
    in between rtconv's one-sentence warning about the same file.  A file damaged halfway is refused (it was read as
    cut short there), in one line and without them too."""
    src = tmp_path / "take.mp3"
    sf.write(str(src), (0.1 * np.random.default_rng(0).standard_normal((3 * 48000, 2))).astype(np.float32), 48000)
    data = bytearray(src.read_bytes())
    if harm == "cut short":
        data = data[: len(data) * 6 // 10]
    else:  # a burst of noise halfway
        data[len(data) // 2 : len(data) // 2 + 3000] = np.random.default_rng(1).integers(0, 256, 3000, np.uint8).tobytes()
    src.write_bytes(bytes(data))
    r = subprocess.run([sys.executable, "-m", "rtconv", "process", str(src), str(tmp_path / "out.wav"), "-m", str(fir)],
                       capture_output=True, text=True, timeout=120, check=False)
    lines = r.stderr.splitlines()
    assert not any("mpg123" in line for line in lines), r.stderr
    assert lines and all(line.startswith("rtconv process: ") for line in lines), r.stderr
    if harm == "cut short":
        assert r.returncode == 0, r.stderr
        assert lines[0].startswith("rtconv process: warning: take.mp3: the file is cut short"), r.stderr
        assert "take.mp3 -> " in r.stdout  # and the file was processed
    else:
        assert r.returncode != 0 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"rtconv process: error: input file {str(src)!r} is damaged at about 1."), r.stderr
        assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("past_guess", [True, False], ids=["libsndfile reads past its guess", "it cannot"])
def test_a_vbr_mp3_without_a_length_header_is_processed_whole_or_refused_in_one_line_never_cut(
        tmp_path, fir, past_guess):
    """libsndfile reads such an MP3 only as far as it guesses from the file's size and first frame's bitrate:
    `rtconv process` wrote 0.66 s of a 3 s file, exit status 0, not a word.  Where libsndfile cannot be brought
    past its guess (forced here), the file gets one line and no output."""
    src, out = tmp_path / "take.mp3", tmp_path / "out.wav"
    x = (0.1 * np.random.default_rng(0).standard_normal((3 * 48000, 2))).astype(np.float32)
    whole = 0
    with open(src, "wb") as f:
        for part, level, size in ((x[:4800], 0.0, 960), (x[4800:], 0.9, 168)):  # 320, then 56 kbit/s
            buf = io.BytesIO()
            sf.write(buf, part, 48000, format="MP3", bitrate_mode="CONSTANT", compression_level=level)
            data = buf.getvalue()
            data = data[size:] if b"Info" in data[:size] else data  # the frame that says how long the part is
            f.write(data)
            whole += len(data) // size * 1152
    guess = sf.info(str(src)).frames
    assert guess < whole // 2
    force = "" if past_guess else "p = c._Padded; c._Padded = lambda raw, size, extra, hide=None: p(raw, size, 0, hide); "
    code = f"import sys, rtconv.cutshort as c; {force}from rtconv.cli import main; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", code, "process", str(src), str(out), "-m", str(fir), "-q"],
                       capture_output=True, text=True, timeout=120, check=False)
    if past_guess:
        assert (r.returncode, r.stderr) == (0, ""), r.stderr
        assert sf.info(str(out)).frames == whole
    else:
        assert r.returncode == 1 and not out.exists(), r.stderr
        line = (f"rtconv process: error: input file {str(src)!r} is a variable-bitrate MP3 without a length header "
                f"(Xing/Info): libsndfile would read {guess / 48000:.2f} s of its {whole / 48000:.2f} s; convert it "
                f"first, e.g. `ffmpeg -i {src} {tmp_path / 'take.flac'}`, and process that.")
        assert r.stderr.splitlines() == [line], r.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["avg.safetensors", "take.mp3"]
