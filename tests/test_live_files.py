"""Recording and model watching, without a device: the recorder's files survive
kills and full disks, and the watcher swaps only complete, valid checkpoints."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import soundfile as sf

import rtconv
from rtconv.live import ModelWatcher, Recorder

from _live import processor as LiveProcessor

RATE = 48000


def _fir(g, rate=RATE):
    m = rtconv.FIR(np.array([g], np.float32))
    m.sample_rate = rate
    return m


def _blocks(seconds, block=480, ch=1):
    ramp = np.arange(int(seconds * RATE), dtype=np.float32) / RATE
    x = np.repeat(ramp[:, None], ch, 1)
    return [x[i : i + block] for i in range(0, len(x), block)]


@pytest.mark.parametrize("channels", [1, 2])
def test_recorder_files_hold_every_pushed_block_in_order(tmp_path, channels):
    rec = Recorder(tmp_path, RATE, channels, stem="take")
    blocks = _blocks(1.3, 480, channels)
    for b in blocks:
        rec.push(b, -b)
    rec.close()
    x = np.concatenate(blocks)
    rin, _ = sf.read(tmp_path / "take-input.wav", dtype="float32", always_2d=True)
    rout, _ = sf.read(tmp_path / "take-output.wav", dtype="float32", always_2d=True)
    np.testing.assert_array_equal(rin, x)
    np.testing.assert_array_equal(rout, -x)
    assert rec.dropped == 0 and rec.error is None


def test_recordings_started_in_the_same_second_do_not_overwrite_each_other(tmp_path):
    a = Recorder(tmp_path, RATE, 1, stem="same")
    b = Recorder(tmp_path, RATE, 1, stem="same")
    a.close(), b.close()
    assert len(list(tmp_path.glob("*.wav"))) == 4


def test_a_recording_folder_that_is_a_file_is_named_as_a_file(tmp_path):
    """`rtconv live --record notes.txt` said '[Errno 17] File exists'."""
    (tmp_path / "notes.txt").write_text("x")
    for where in ("notes.txt", "notes.txt/sub"):
        with pytest.raises(rtconv.AudioFileError) as e:
            Recorder(tmp_path / where, RATE, 1)
        assert str(e.value) == (f"cannot record into {str(tmp_path / where)!r}: it is a file, not a folder; give "
                                "--record a folder (it is made if missing).")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_recording_directory_that_cannot_be_created_is_named(tmp_path):
    import os

    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    if os.access(tmp_path / "ro", os.W_OK):  # root: an unwritable folder is faked at the mkdir
        import unittest.mock as mock

        ctx = mock.patch("pathlib.Path.mkdir", side_effect=PermissionError(13, "Permission denied"))
    else:
        import contextlib

        ctx = contextlib.nullcontext()
    with ctx, pytest.raises(rtconv.AudioFileError, match=r"cannot create recording files in '.*ro/sub' "
                                                         r"\(.*Permission denied.*\); choose a writable --record directory"):
        Recorder(tmp_path / "ro" / "sub", RATE, 1)


_CHILD = textwrap.dedent("""
    import sys, time, resource, numpy as np
    from rtconv.live import Recorder
    limit = int(sys.argv[2])
    if limit:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # a disk that fills up
    rec = Recorder(sys.argv[1], 48000, 1, stem="take", flush_s=0.25)
    t = 0
    start = time.monotonic()
    while time.monotonic() - start < 30:
        block = (np.arange(t, t + 480, dtype=np.float32) / 48000)[:, None]
        rec.push(block, block)
        t += 480
        if not rec.active and limit:
            print("ERROR", rec.error, flush=True)
            # the producer keeps going: pushing to a stopped recorder is harmless
            rec.push(block, block)
            print("PUSHED", t, flush=True)
            rec.close()
            sys.exit(0)
        print(t, flush=True)
        time.sleep(0.01)
""")


def test_a_killed_recorder_leaves_files_that_open_with_all_audio_up_to_the_last_flush(tmp_path):
    p = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), "0"], stdout=subprocess.PIPE, text=True)
    last = 0
    start = time.monotonic()
    while time.monotonic() - start < 2.5:
        line = p.stdout.readline()
        last = int(line)
    p.kill()
    p.wait()
    x, _ = sf.read(tmp_path / "take-input.wav", dtype="float32")
    assert len(x) >= last - RATE, (len(x), last)  # at most the last second lost (flushes every 0.25 s)
    np.testing.assert_array_equal(x, np.arange(len(x), dtype=np.float32) / 48000)


def test_a_full_disk_stops_recording_with_a_message_and_the_producer_goes_on(tmp_path):
    p = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), "200000"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    err = [l for l in p.stdout.splitlines() if l.startswith("ERROR")]
    assert err and "recording stopped after" in err[0] and "the stream keeps running" in err[0]
    assert any(l.startswith("PUSHED") for l in p.stdout.splitlines())
    x, _ = sf.read(tmp_path / "take-input.wav", dtype="float32")  # what fitted is still readable
    assert len(x) > 0


def test_the_watcher_swaps_in_a_rewritten_checkpoint_once_it_is_complete(tmp_path):
    path = tmp_path / "m.safetensors"
    rtconv.save(_fir(1.0), path)
    proc = LiveProcessor(rtconv.load(path), RATE, 1, 128)
    events = []
    w = ModelWatcher(path, proc.request_swap, on_event=lambda m, swapped=False: events.append(m))
    assert not w.poll()  # the running version is not new
    rtconv.save(_fir(0.25), path)
    assert not w.poll()  # seen once: the trainer may still be writing
    assert w.poll()
    proc.process(np.zeros((128, 1), np.float32))
    assert proc.model.kernel[0] == 0.25 and w.swaps == 1
    assert "swapped in" in events[-1]


def test_the_watcher_reports_a_broken_version_and_keeps_the_running_model(tmp_path):
    path = tmp_path / "m.safetensors"
    rtconv.save(_fir(1.0), path)
    proc = LiveProcessor(rtconv.load(path), RATE, 1, 128)
    events = []
    w = ModelWatcher(path, proc.request_swap, on_event=lambda m, swapped=False: events.append(m))
    path.write_bytes(b"half a file")
    w.poll(), w.poll()
    assert w.rejected == 1 and "m.safetensors" in events[-1] and "keeps playing" in events[-1]
    assert proc.model.kernel[0] == 1.0
    assert not w.poll()  # reported once, not every poll


def test_the_watcher_thread_starts_and_stops(tmp_path):
    path = tmp_path / "m.safetensors"
    rtconv.save(_fir(1.0), path)
    proc = LiveProcessor(rtconv.load(path), RATE, 1, 128)
    with ModelWatcher(path, proc.request_swap, interval=0.02, on_event=lambda m, swapped=False: None) as w:
        rtconv.save(_fir(0.5), path)
        end = time.monotonic() + 5
        while not proc.swap_pending and time.monotonic() < end:
            time.sleep(0.01)
    assert w.swaps == 1
