"""`rtconv process` over many files: folders and sub-folders, resuming, progress, worker processes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import rtconv
from rtconv.cli import main
from rtconv.cli import batch
from rtconv.cli import process as cli


def _wav(path, seconds=0.1, rate=48000):
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * rate)
    sf.write(str(path), 0.1 * np.random.default_rng(n).standard_normal(n), rate, subtype="PCM_16")
    return path


@pytest.fixture
def fir(tmp_path):
    m = rtconv.FIR([0.5, 0.5])
    m.sample_rate = 48000
    return str(rtconv.save(m, tmp_path / "avg.safetensors"))


@pytest.fixture
def tree(tmp_path):
    """in/a.wav, in/b.wav, in/day1/c.wav, in/day1/take2/d.flac, in/.hidden/e.wav."""
    root = tmp_path / "in"
    for name in ("a.wav", "b.wav", "day1/c.wav", "day1/take2/d.flac", ".hidden/e.wav"):
        _wav(root / name)
    out = tmp_path / "out"
    out.mkdir()
    return root, out


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- folders ---------------------------------------------------------------------


def test_without_recursive_sub_folders_are_counted_in_one_line(tree, fir, capsys):
    root, out = tree
    assert main(["process", str(root), "-o", str(out), "-m", fir]) == 0
    assert _files(out) == ["a-filtered.wav", "b-filtered.wav"]
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "sub-folder" in line]
    assert notes == [f"rtconv process: note: skipped 1 sub-folder(s) ({root / 'day1'}); "
                     "pass --recursive to include them"]


def test_recursive_mirrors_the_sub_folders_under_the_output_folder(tree, fir, capsys):
    root, out = tree
    assert main(["process", str(root), "-o", str(out), "-m", fir, "-q", "--recursive"]) == 0
    assert _files(out) == ["a-filtered.wav", "b-filtered.wav", "day1/c-filtered.wav",
                           "day1/take2/d-filtered.flac"]
    assert "sub-folder" not in capsys.readouterr().err


def test_recursive_without_an_output_folder_writes_beside_each_input(tree, fir):
    root, _ = tree
    assert main(["process", str(root), "-m", fir, "-q", "-r"]) == 0
    assert (root / "day1" / "take2" / "d-filtered.flac").is_file() and (root / "day1" / "c-filtered.wav").is_file()
    assert not (root / ".hidden" / "e-filtered.wav").exists()  # hidden folders are not entered


def test_recursive_does_not_enter_an_output_folder_inside_the_input(tree, fir):
    root, _ = tree
    out = root / "cleaned"
    out.mkdir()
    assert main(["process", str(root), "-o", str(out), "-m", fir, "-q", "-r"]) == 0
    assert main(["process", str(root), "-o", str(out), "-m", fir, "-q", "-r", "--skip-existing"]) == 0
    assert _files(out) == ["a-filtered.wav", "b-filtered.wav", "day1/c-filtered.wav",
                           "day1/take2/d-filtered.flac"]


def test_a_folder_with_only_sub_folders_says_to_pass_recursive(tmp_path, fir, capsys):
    _wav(tmp_path / "in" / "sub" / "a.wav")
    assert main(["process", str(tmp_path / "in"), "-m", fir]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"rtconv process: error: no audio files found in {str(tmp_path / 'in')!r}; "
                   "sub-folders were not searched, pass --recursive to include them.")


def test_mirrored_folders_of_files_that_all_failed_are_removed_again(tmp_path, fir, capsys):
    root = tmp_path / "in"
    (root / "bad").mkdir(parents=True)
    (root / "bad" / "x.wav").write_text("not audio")
    _wav(root / "good" / "y.wav")
    out = tmp_path / "out"
    out.mkdir()
    assert main(["process", str(root), "-o", str(out), "-m", fir, "-q", "-r"]) == 1
    assert _files(out) == ["good/y-filtered.wav"] and not (out / "bad").exists()


# --- resuming ----------------------------------------------------------------------


def test_skip_existing_resumes_a_batch_and_says_how_many_it_skipped(tree, fir, capsys):
    root, out = tree
    assert main(["process", str(root / "a.wav"), "-o", str(out), "-m", fir, "-q"]) == 0
    before = (out / "a-filtered.wav").stat().st_mtime_ns
    assert main(["process", str(root), "-o", str(out), "-m", fir, "-r", "--skip-existing"]) == 0
    cap = capsys.readouterr()
    assert "rtconv process: note: skipped 1 file(s) whose output already exists (--skip-existing)" in cap.err
    assert "a.wav ->" not in cap.out and "b.wav ->" in cap.out and "3 file(s)" in cap.out
    assert (out / "a-filtered.wav").stat().st_mtime_ns == before
    assert main(["process", str(root), "-o", str(out), "-m", fir, "-r", "--skip-existing"]) == 0
    assert "skipped 4 file(s) whose output already exists" in capsys.readouterr().err


def test_without_skip_existing_an_existing_output_is_an_error_that_names_both_ways_out(tree, fir, capsys):
    root, out = tree
    _wav(out / "a-filtered.wav")
    assert main(["process", str(root), "-o", str(out), "-m", fir, "-q"]) == 1
    err = capsys.readouterr().err
    assert "a-filtered.wav' already exists; pass --overwrite to replace it, --skip-existing to keep it" in err
    assert "1 of 2 file(s) failed" in err and (out / "b-filtered.wav").is_file()


def test_skip_existing_and_overwrite_contradict_each_other(tree, fir, capsys):
    root, out = tree
    with pytest.raises(SystemExit) as e:
        main(["process", str(root), "-o", str(out), "-m", fir, "--overwrite", "--skip-existing"])
    assert e.value.code == 2
    assert "not allowed with argument --overwrite" in capsys.readouterr().err


# --- progress ----------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2])
def test_progress_counts_audio_time_over_all_files(tmp_path, fir, capsys, monkeypatch, jobs):
    for i in range(3):
        _wav(tmp_path / "in" / f"f{i}.wav", seconds=2.0)
    (tmp_path / "out").mkdir()
    monkeypatch.setattr(cli, "_stderr_tty", lambda: True)
    assert main(["process", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", fir, "-j", str(jobs)]) == 0
    err = capsys.readouterr().err
    assert "3 files:" in err and " of 0:00:06 audio [" in err and "x real time]" in err


def test_no_progress_bar_when_quiet_or_not_on_a_terminal(tmp_path, fir, capsys, monkeypatch):
    src = _wav(tmp_path / "a.wav", seconds=1.0)
    monkeypatch.setattr(cli, "_stderr_tty", lambda: True)
    assert main(["process", str(src), "-m", fir, "-q"]) == 0
    assert "audio [" not in capsys.readouterr().err
    monkeypatch.setattr(cli, "_stderr_tty", lambda: False)
    assert main(["process", str(src), "-m", fir, "--overwrite"]) == 0
    assert "audio [" not in capsys.readouterr().err


# --- worker processes --------------------------------------------------------------


@pytest.mark.parametrize(
    "jobs,files,threads,cores,expected",
    [
        (1, 10, None, 8, (0, 1)),  # serial: no pool
        (4, 1, None, 8, (0, 1)),  # one file: no pool however many jobs
        (4, 3, None, 8, (2, 1)),  # no more processes than files; this process is one of them
        (4, 10, None, 8, (3, 1)),
        (8, 10, None, 2, (1, 1)),  # no more processes than cores
        (2, 10, 4, 8, (1, 4)),  # jobs * threads <= cores ...
        (4, 10, 4, 8, (3, 2)),  # ... by cutting the threads
        (1, 1, 16, 4, (0, 4)),
    ],
)
def test_workers_and_threads_fit_the_files_and_the_cores(jobs, files, threads, cores, expected):
    assert batch.plan_workers(jobs, files, threads, cores) == expected


def test_one_file_starts_no_worker_process(tmp_path, fir, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a worker pool was started for one file")

    monkeypatch.setattr(batch._Workers, "__init__", refuse)
    assert main(["process", str(_wav(tmp_path / "a.wav")), "-m", fir, "-q", "--jobs", "4"]) == 0


def test_a_batch_done_sooner_than_a_worker_starts_starts_none(tmp_path, fir, monkeypatch):
    # a worker costs a fresh interpreter, a torch import and a model load: 1-2 s
    def refuse(*a, **k):
        raise AssertionError("a worker pool was started for a batch of 0.2 s")

    monkeypatch.setattr(batch._Workers, "__init__", refuse)
    for i in range(8):
        _wav(tmp_path / "in" / f"f{i}.wav", seconds=0.5)
    (tmp_path / "out").mkdir()
    assert main(["process", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", fir, "-q", "-j", "2"]) == 0
    assert len(list((tmp_path / "out").iterdir())) == 8


def test_a_worker_loads_the_model_once_and_takes_many_files(tmp_path, fir):
    srcs = [_wav(tmp_path / f"w{i}.wav") for i in range(4)]
    jobs = [batch._Job(i, p, tmp_path / f"o{i}.wav", 0.1) for i, p in enumerate(srcs)]
    kw = dict(block_size=None, offline=False, align=True, subtype=None, overwrite=False, threads=1, wet=1.0,
              attenuation_limit_db="model")
    workers = batch._Workers(1, fir, (None, False), 1, kw, len(jobs))  # switches: strength, linked
    try:
        ready = workers.poll(timeout=60)
        assert ready == [] and workers.free == 1  # one "ready" per worker: the model is loaded
        for job in jobs:
            workers.tasks.put(job)  # all at once, to the same single worker
        results = []
        while len(results) < len(jobs):
            results += workers.poll(timeout=60)
    finally:
        workers.close(stopping=False)
    assert sorted(r[0] for r in results) == [0, 1, 2, 3] and all(r[2] is None for r in results)
    assert all((tmp_path / f"o{i}.wav").is_file() for i in range(4))
    assert all(not p.is_alive() for p in workers.procs)


def test_parallel_run_reports_every_file_once_and_sums_the_audio(tmp_path, fir, capsys):
    for i in range(6):
        _wav(tmp_path / "in" / f"f{i}.wav", seconds=0.5 + 0.25 * i)
    (tmp_path / "out").mkdir()
    assert main(["process", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", fir, "-j", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(line.split(" ->")[0] for line in out[:-1]) == [f"f{i}.wav" for i in range(6)]
    assert out[-1].startswith("6 file(s), 6.8 s of audio in ")


def test_a_slow_main_process_shares_the_files_with_a_worker(tmp_path, fir, capsys, monkeypatch):
    import time

    import rtconv.files as files

    for i in range(8):
        _wav(tmp_path / "in" / f"f{i}.wav", seconds=0.5)
    serial, par = tmp_path / "serial", tmp_path / "par"
    serial.mkdir(), par.mkdir()
    assert main(["process", str(tmp_path / "in"), "-o", str(serial), "-m", fir, "-q"]) == 0
    real, here = files.process_file, []

    def slow(src, *a, **k):  # this process only: the workers are fresh interpreters
        here.append(src.name)
        time.sleep(1.0)
        return real(src, *a, **k)

    monkeypatch.setattr(files, "process_file", slow)
    assert main(["process", str(tmp_path / "in"), "-o", str(par), "-m", fir, "-j", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split(" ->")[0] for line in lines[:-1]) == [f"f{i}.wav" for i in range(8)]
    assert 1 <= len(here) < 8, here  # the worker took the others once it was ready
    for i in range(8):
        a, b = (sf.read(str(d / f"f{i}-filtered.wav"))[0] for d in (serial, par))
        np.testing.assert_array_equal(a, b)
