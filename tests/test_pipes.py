"""rtconv in a pipeline: `-` reads standard input (`rtconv process`, `rtconv vad`), `-o -` writes standard output
(`rtconv process`; rtconv.cli.pipes).

Every test runs the command in a fresh interpreter with real pipes (and a real pseudo-terminal where a
terminal is the point), as a shell pipeline would.
"""

import io
import os
import pty
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import rtconv


@pytest.fixture
def fir(tmp_path):
    m = rtconv.FIR([0.5, 0.25, 0.125])
    m.sample_rate = 48000
    return str(rtconv.save(m, tmp_path / "fir.safetensors"))


def _noise(path, frames=24000, channels=2, rate=48000, subtype="PCM_16", format=None):
    x = (0.2 * np.random.default_rng(1).standard_normal((frames, channels))).astype(np.float32)
    sf.write(str(path), x, rate, subtype=subtype, format=format)
    return path


def _rtconv(*argv, stdin=b"", tmp=None, stdout=subprocess.PIPE, command="process", **kw):
    env = dict(os.environ, **({"TMPDIR": str(tmp)} if tmp else {}))
    return subprocess.run([sys.executable, "-m", "rtconv", command, *argv], input=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, env=env, timeout=120, **kw)


def _one_sentence(err: bytes, command: str = "process") -> str:
    text = err.decode()
    assert "Traceback" not in text and text.count("\n") == 1 and text.startswith(f"rtconv {command}: error: "), text
    return text


@pytest.mark.parametrize("suffix, subtype", [("wav", "PCM_16"), ("flac", "PCM_24"), ("ogg", "VORBIS")])
def test_standard_input_to_standard_output_equals_the_file_to_file_run(tmp_path, fir, suffix, subtype):
    src = _noise(tmp_path / f"in.{suffix}", subtype=subtype)
    ref = tmp_path / f"ref.{suffix}"
    assert _rtconv(str(src), str(ref), "-m", fir, "-q").returncode == 0
    spool = tmp_path / "spool"
    spool.mkdir()
    r = _rtconv("-", "-m", fir, stdin=src.read_bytes(), tmp=spool)
    assert r.returncode == 0, r.stderr.decode()
    got, rate = sf.read(io.BytesIO(r.stdout), dtype="float32")
    want, _ = sf.read(str(ref), dtype="float32")
    info = sf.info(io.BytesIO(r.stdout))
    assert rate == 48000 and info.format == sf.info(str(src)).format and info.subtype == subtype
    np.testing.assert_array_equal(got, want)
    # what rtconv says goes to standard error, the temporary copies are gone
    assert b"standard input -> standard output: 0.50 s, 48000 Hz, 2->2 ch" in r.stderr
    assert list(spool.iterdir()) == []


def test_a_file_to_standard_output_takes_the_format_asked_for(tmp_path, fir):
    src = _noise(tmp_path / "in.wav")
    r = _rtconv(str(src), "-o", "-", "--format", "flac", "-m", fir, "-q")
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
    assert sf.info(io.BytesIO(r.stdout)).format == "FLAC"
    r = _rtconv(str(src), "-", "-m", fir, "-q")  # a trailing '-' is the output too
    assert r.returncode == 0 and sf.info(io.BytesIO(r.stdout)).format == "WAV"


def test_standard_input_to_a_file_is_named_and_written_like_any_output(tmp_path, fir):
    src = _noise(tmp_path / "in.wav")
    out = tmp_path / "out.flac"
    r = _rtconv("-", str(out), "-m", fir, stdin=src.read_bytes())
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.startswith(b"standard input -> " + str(out).encode())  # the summary: no audio on stdout here
    assert sf.info(str(out)).format == "FLAC" and sf.info(str(out)).frames == 24000
    r = _rtconv("-", "-o", str(out), "-m", fir, stdin=src.read_bytes())
    assert r.returncode == 1 and "already exists; pass --overwrite" in _one_sentence(r.stderr)


def test_empty_or_unreadable_standard_input_is_refused_in_one_sentence_naming_it(tmp_path, fir):
    r = _rtconv("-", "-m", fir, stdin=b"", tmp=tmp_path)
    assert r.returncode == 1 and r.stdout == b""
    assert "standard input was empty: there is no audio to process" in _one_sentence(r.stderr)
    r = _rtconv("-", "-m", fir, stdin=b"hello, not audio\n", tmp=tmp_path)
    assert r.returncode == 1 and r.stdout == b""
    msg = _one_sentence(r.stderr)
    assert "standard input is a text file, not audio" in msg and str(tmp_path) not in msg
    assert list(tmp_path.iterdir()) == [tmp_path / "fir.safetensors"]  # the spooled copy is gone


def test_a_file_cut_short_on_standard_input_is_read_as_far_as_it_goes(tmp_path, fir):
    src = _noise(tmp_path / "in.wav")
    data = src.read_bytes()
    r = _rtconv("-", "-m", fir, stdin=data[: len(data) * 6 // 10])
    assert r.returncode == 0, r.stderr.decode()
    assert b"rtconv process: warning: standard input: " in r.stderr
    assert 12000 < sf.info(io.BytesIO(r.stdout)).frames < 24000


@pytest.mark.parametrize("argv, words", [
    (["-", "a.wav", "b.wav"], "'-' (standard input) is read as the only input"),
    (["a.wav", "b.wav", "-o", "-"], "takes one file's audio and 2 inputs were given"),
    (["a.wav", "-o", "out.wav", "--format", "flac"], "--format flac sets the format of audio written to standard"),
    (["-", "-o", "x.wav", "--format", "flac"], "--format flac sets the format of audio written to standard"),
    (["a.wav", "-o", "-", "--format", "xyz"], "--format 'xyz' is no audio format libsndfile writes"),
])
def test_what_a_pipe_cannot_do_is_refused_before_any_work(tmp_path, fir, argv, words):
    for name in ("a.wav", "b.wav"):
        _noise(tmp_path / name)
    r = _rtconv(*argv, "-m", fir, cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == b"" and words in _one_sentence(r.stderr)


def test_audio_is_not_written_to_a_terminal(tmp_path, fir):
    src = _noise(tmp_path / "in.wav")
    leader, follower = pty.openpty()
    try:
        r = _rtconv(str(src), "-o", "-", "-m", fir, stdout=follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert r.returncode == 1
    assert "standard output is a terminal, where audio would only garble the screen" in _one_sentence(r.stderr)


def test_a_terminal_on_standard_input_is_not_waited_on(tmp_path, fir):
    leader, follower = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-m", "rtconv", "process", "-", "-o", str(tmp_path / "o.wav"), "-m", fir],
                           stdin=follower, capture_output=True, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert r.returncode == 1 and not (tmp_path / "o.wav").exists()
    assert "standard input is a terminal, not audio; pipe a file in" in _one_sentence(r.stderr)


def test_speech_segments_of_standard_input_are_those_of_the_file(tmp_path):
    t = np.arange(3 * 16000) / 16000
    voiced = (0.3 * np.sin(2 * np.pi * 140 * t) * np.sin(2 * np.pi * 3 * t) ** 2 * (t > 1)).astype(np.float32)
    src = tmp_path / "talk.flac"
    sf.write(str(src), voiced, 16000)
    want = _rtconv(str(src), command="vad")
    spool = tmp_path / "spool"
    spool.mkdir()
    got = _rtconv("-", stdin=src.read_bytes(), tmp=spool, command="vad")
    assert want.returncode == got.returncode == 0, got.stderr.decode()
    assert got.stdout == want.stdout and got.stdout.count(b"\n") >= 1
    assert got.stderr.splitlines()[-1] == want.stderr.splitlines()[-1]  # "N segment(s), S s of speech in 3.00 s"
    assert list(spool.iterdir()) == []
    r = _rtconv("-", stdin=b"not audio\n", tmp=spool, command="vad")
    msg = _one_sentence(r.stderr, "vad")
    assert r.returncode == 1 and "standard input is a text file, not audio" in msg and str(spool) not in msg


def test_the_progress_bar_on_a_terminal_names_standard_input_not_its_spooled_copy(tmp_path, fir):
    import fcntl
    import select
    import struct
    import termios

    src = _noise(tmp_path / "in.wav", frames=10 * 48000)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal 120 columns wide
    try:
        p = subprocess.Popen([sys.executable, "-m", "rtconv", "process", "-", "-o", "-", "-m", fir],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=follower)
        out, _ = p.communicate(src.read_bytes(), timeout=120)
    finally:
        os.close(follower)
    seen = b""
    try:
        while select.select([leader], [], [], 0.5)[0]:
            chunk = os.read(leader, 4096)
            if not chunk:
                break
            seen += chunk
    except OSError:  # the terminal's other side is closed: all was read
        pass
    finally:
        os.close(leader)
    assert p.returncode == 0 and sf.info(io.BytesIO(out)).frames == 10 * 48000
    assert b"\rstandard input:   0%|" in seen and b"of 0:00:10 audio" in seen and b"stdin" not in seen, seen[:300]
