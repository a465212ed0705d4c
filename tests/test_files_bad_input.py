"""Every bad input to file processing: one clear sentence, no partial output, input untouched."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import rtconv
from rtconv import AudioFileError, CheckpointError
from rtconv.files import process_file


def _noise(frames, channels=1):
    return (0.1 * np.random.default_rng(0).standard_normal((frames, channels))).astype(np.float32)


@pytest.fixture
def good(tmp_path):
    p = tmp_path / "good.wav"
    sf.write(str(p), _noise(5000, 2), 48000, subtype="PCM_16")
    return p


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def _refused(tmp_path, src, match, output=None, model=None, **kw):
    """Process must fail with ``match`` in a one-sentence message, leaving the folder as it was."""
    before = _digest(tmp_path)
    with pytest.raises((AudioFileError, CheckpointError)) as info:
        process_file(src, output, model if model is not None else rtconv.FIR([1.0, 0.5]), progress=False, **kw)
    msg = str(info.value)
    assert match in msg, msg
    assert "\n" not in msg and msg.endswith("."), msg
    assert _digest(tmp_path) == before, "a failed run must leave no output and not touch the input"
    assert not list(tmp_path.rglob("*.part"))
    return msg


def test_missing_file(tmp_path):
    _refused(tmp_path, tmp_path / "nope.wav", "'" + str(tmp_path / "nope.wav") + "' does not exist")


def test_empty_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    _refused(tmp_path, tmp_path / "empty.wav", "is empty (0 bytes)")


def test_wav_header_without_frames(tmp_path):
    sf.write(str(tmp_path / "zero.wav"), np.zeros((0, 1)), 48000)
    _refused(tmp_path, tmp_path / "zero.wav", "holds no audio (0 frames)")


def test_text_file_named_wav(tmp_path):
    (tmp_path / "notes.wav").write_text("meeting notes: buy milk\n" * 10)
    _refused(tmp_path, tmp_path / "notes.wav", "is a text file, not audio")


def test_corrupt_file_of_random_bytes(tmp_path):
    (tmp_path / "junk.wav").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _refused(tmp_path, tmp_path / "junk.wav", "is not audio that soundfile can read, or it is corrupt")


def test_wav_whose_header_is_damaged(tmp_path, good):
    data = bytearray(good.read_bytes())
    data[20:22] = struct.pack("<H", 0x7777)  # unknown codec tag in the fmt chunk
    bad = tmp_path / "damaged.wav"
    bad.write_bytes(bytes(data))
    _refused(tmp_path, bad, "corrupt")


def test_folder_given_as_a_file(tmp_path):
    (tmp_path / "sub").mkdir()
    _refused(tmp_path, tmp_path / "sub", "is a folder, not an audio file")


@pytest.mark.parametrize("rate", [500, 1_000_000])
def test_absurd_sample_rate_is_refused(tmp_path, rate):
    p = tmp_path / f"r{rate}.wav"
    sf.write(str(p), _noise(100), rate)
    _refused(tmp_path, p, f"claims a sample rate of {rate} Hz, outside the 1000-768000 Hz")


@pytest.mark.parametrize("rate", [8000, 384000])
def test_extreme_but_real_sample_rates_are_processed_with_a_note(tmp_path, rate):
    p = tmp_path / f"r{rate}.wav"
    sf.write(str(p), _noise(rate // 20), rate)
    model = rtconv.FIR([1.0])
    model.sample_rate = 48000
    s = process_file(p, None, model, progress=False)
    assert sf.info(str(s.output)).samplerate == rate and s.output_frames == rate // 20
    assert any("resampled" in w for w in s.warnings + s.notes)


def test_mimo_model_on_wrong_channel_count(tmp_path, good):
    model = rtconv.MimoCNN([3], [3, 1])
    _refused(tmp_path, good, "the model mixes 3 input channels but the audio has 2", model=model)


def test_output_folder_missing(tmp_path, good):
    _refused(tmp_path, good, "output folder", output=tmp_path / "nowhere" / "out.wav")
    msg = _refused(tmp_path, good, "does not exist", output=tmp_path / "nowhere" / "out.wav")
    assert "nowhere" in msg


def test_output_folder_not_writable(tmp_path, good, monkeypatch):
    # tests run as root, for whom chmod does not stop writes: simulate the OS refusing
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    _refused(tmp_path, good, "cannot write to output folder", output=tmp_path / "out.wav")


def test_full_disk_leaves_no_partial_output(tmp_path, good, monkeypatch):
    calls = []
    real = sf.SoundFile.write

    def write(self, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", write)
    monkeypatch.setattr("rtconv.files.process._READ_CHUNK", 1000)
    out = tmp_path / "out.wav"
    msg = _refused(tmp_path, good, f"cannot write output {str(out)!r}: No space left on device", output=out)
    assert "nothing was saved" in msg
    assert len(calls) == 2


def _statvfs_with(free_blocks):
    import os

    real = os.statvfs

    def statvfs(path):
        st = real(path)
        return os.statvfs_result((st.f_bsize, st.f_frsize, st.f_blocks, free_blocks, free_blocks, st.f_files,
                                  st.f_ffree, st.f_favail, st.f_flag, st.f_namemax))

    return statvfs


def test_full_disk_that_libsndfile_calls_a_system_error_says_no_space(tmp_path, good, monkeypatch):
    # libsndfile turns ENOSPC into its generic error 2, "System error" (what a real full disk gives)
    import os

    def write(self, data):
        raise sf.LibsndfileError(2)

    monkeypatch.setattr(sf.SoundFile, "write", write)
    monkeypatch.setattr(os, "statvfs", _statvfs_with(0))
    out = tmp_path / "out.wav"
    msg = _refused(tmp_path, good, f"cannot write output {str(out)!r}: No space left on device", output=out)
    assert "System error" not in msg and "nothing was saved" in msg


def test_a_system_error_with_room_left_on_the_disk_is_not_called_a_full_disk(tmp_path, good, monkeypatch):
    import os

    def write(self, data):
        raise sf.LibsndfileError(2)

    monkeypatch.setattr(sf.SoundFile, "write", write)
    monkeypatch.setattr(os, "statvfs", _statvfs_with(10**6))
    msg = _refused(tmp_path, good, "cannot write output", output=tmp_path / "out.wav")
    assert "No space" not in msg


@pytest.mark.parametrize("both", [False, True], ids=["one pass", "both directions (scratch copies first)"])
def test_a_really_full_disk_says_no_space_left_on_device(tmp_path, good, both):
    # a 16 KiB tmpfs in a private mount namespace (root only): the real libsndfile path; the scratch copies
    # of --both-directions are written by soundfile directly, and their error came out as a traceback
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    small = tmp_path / "small"
    small.mkdir()
    model = "ConvDenoiser(window=32, hop=16, channels=8, blocks=2)" if both else "rtconv.FIR([1.0])"
    code = ("import sys, rtconv; from rtconv.files import process_file; from rtconv.denoiser import ConvDenoiser\n"
            f"m = {model}; m.metadata = {{'task': 'denoise'}}\n"
            "try:\n"
            f"    process_file({str(good)!r}, {str(small / 'out.wav')!r}, m, progress=False,"
            f" both_directions={both})\n"
            "except rtconv.AudioFileError as e:\n"
            "    print(e); print(sorted(__import__('os').listdir(sys.argv[1])))\n")
    r = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=16k tmpfs "$1" && exec "$0" -c "$2" "$1"',
                        sys.executable, str(small), code], capture_output=True, text=True)
    if "mount" in r.stderr or "unshare" in r.stderr:
        pytest.skip(f"cannot mount a small file system here: {r.stderr.strip()}")
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"cannot write output {str(small / 'out.wav')!r}: No space left on device"), r
    assert lines[1] == "[]"  # no partial output, no temporary file


def test_interrupt_leaves_no_partial_output(tmp_path, good, monkeypatch):
    monkeypatch.setattr("rtconv.files.process._READ_CHUNK", 1000)
    before = _digest(tmp_path)

    def ctrl_c(done, total):
        if done >= 2000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_file(good, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=ctrl_c)
    assert _digest(tmp_path) == before and not list(tmp_path.glob(".*"))


def test_output_equal_to_input_is_refused(tmp_path, good):
    _refused(tmp_path, good, "is the input file; rtconv never overwrites its input", output=good)


def test_existing_output_is_kept_without_overwrite(tmp_path, good):
    (tmp_path / "out.wav").write_bytes(b"precious")
    _refused(tmp_path, good, "already exists; pass --overwrite to replace it, --skip-existing to keep it",
             output=tmp_path / "out.wav")
    process_file(good, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False, overwrite=True)
    assert sf.info(str(tmp_path / "out.wav")).frames == 5000


def test_unknown_output_extension(tmp_path, good):
    _refused(tmp_path, good, "cannot tell the audio format of output", output=tmp_path / "out.xyz")


def test_output_subtype_the_format_cannot_hold(tmp_path, good):
    _refused(tmp_path, good, "format FLAC cannot store subtype 'FLOAT'", output=tmp_path / "o.flac", subtype="FLOAT")


@pytest.mark.parametrize("ext,match", [
    ("xi", "XI files cannot store 48000 Hz (they would say 44100 Hz"),
    ("wve", "WVE files cannot store 48000 Hz (they would say 8000 Hz"),
    ("htk", "HTK files cannot store 48000 Hz (they would say 48076 Hz"),
    ("sd2", "cannot be written as SD2: libsndfile keeps its header in a separate resource-fork file"),
])
def test_an_output_format_that_would_not_give_the_audio_back_is_refused_before_writing(tmp_path, ext, match):
    mono = tmp_path / "mono.wav"
    sf.write(str(mono), _noise(5000), 48000, subtype="PCM_16")
    _refused(tmp_path, mono, match, output=tmp_path / f"o.{ext}")


def test_stereo_into_a_one_channel_format_says_so(tmp_path):
    src = tmp_path / "st.wav"
    sf.write(str(src), _noise(5000, 2), 44100, subtype="PCM_16")
    _refused(tmp_path, src, "XI files hold one channel and the output", output=tmp_path / "o.xi")


def test_a_one_channel_format_at_a_rate_it_holds_still_writes(tmp_path):
    src = tmp_path / "m.wav"
    sf.write(str(src), _noise(5000), 16000, subtype="PCM_16")
    s = process_file(src, tmp_path / "o.htk", rtconv.FIR([1.0]), progress=False)
    assert sf.info(str(s.output)).samplerate == 16000 and sf.info(str(s.output)).frames == 5000


def test_bad_model_file(tmp_path, good):
    (tmp_path / "m.safetensors").write_text("not a model")
    _refused(tmp_path, good, "is not an rtconv checkpoint", model=tmp_path / "m.safetensors")


def test_too_many_output_channels_for_any_audio_file(tmp_path):
    p = tmp_path / "many.wav"
    sf.write(str(p), np.zeros((10, 600), np.float32), 48000)
    splitter = rtconv.MimoCNN([1], [1, 2])  # 600 channels in, 1200 out
    _refused(tmp_path, p, "would have 1200 channels, more than the 1024 an audio file can hold", model=splitter)


def test_unreadable_input_names_the_os_reason(tmp_path, good, monkeypatch):
    # root reads files whatever their mode: simulate the OS refusing
    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("rtconv.audio.reader._probe", refuse)
    _refused(tmp_path, good, "cannot read input file '" + str(good) + "': Permission denied; check its permissions")


def test_output_folder_with_trailing_slash_that_does_not_exist(tmp_path, good):
    _refused(tmp_path, good, "output folder '" + str(tmp_path / "cleaned") + "/' does not exist",
             output=str(tmp_path / "cleaned") + "/")


@pytest.mark.parametrize("fmt, subtype, channels", [("WAV", "PCM_16", 2), ("WAV", "FLOAT", 1), ("AIFF", "PCM_24", 2),
                                                     ("W64", "PCM_16", 1), ("AU", "PCM_16", 2), ("RF64", "FLOAT", 2)])
def test_a_file_cut_short_is_processed_whole_as_far_as_it_goes_with_a_warning_naming_both_lengths(
        tmp_path, fmt, subtype, channels):
    """A recording stopped by a crash: libsndfile reads what is there and says so only in its log."""
    src = tmp_path / f"cut.{fmt.lower()}"
    x = _noise(48000, channels)
    sf.write(str(src), x, 48000, format=fmt, subtype=subtype)
    width = {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4}[subtype] * channels
    with open(src, "r+b") as f:
        f.truncate(src.stat().st_size - 20000 * width)  # 20000 frames gone (AU and others keep no trailer)
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    held = sf.info(str(src)).frames
    assert held == 28000 and s.output_frames == held
    assert s.warnings == ["the file is cut short: its header announces 1.00 s (48000 frames) and it holds 0.58 s "
                          "(28000); what it holds was processed (a recording stopped by a crash, or a copy not "
                          "finished?)"], s.warnings
    y, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32", always_2d=True)
    np.testing.assert_allclose(y, sf.read(str(src), dtype="float32", always_2d=True)[0], atol=1e-4)


def test_a_whole_file_and_a_streamed_wav_of_unknown_length_are_not_called_cut_short(tmp_path):
    whole = tmp_path / "whole.wav"
    sf.write(str(whole), _noise(4800), 48000, subtype="PCM_16")
    piped = tmp_path / "piped.wav"  # `ffmpeg ... -f wav pipe:` writes 0xFFFFFFFF where the sizes go
    data = bytearray(whole.read_bytes())
    data[4:8] = struct.pack("<I", 0xFFFFFFFF)
    k = data.index(b"data")
    data[k + 4 : k + 8] = struct.pack("<I", 0xFFFFFFFF)
    piped.write_bytes(bytes(data))
    for src in (whole, piped):
        s = process_file(src, tmp_path / f"{src.stem}-out.wav", rtconv.FIR([1.0]), progress=False)
        assert s.output_frames == 4800 and not any("cut short" in w for w in s.warnings), (src, s.warnings)


def _cut(path, keep):
    """Keep the first ``keep`` (a fraction) of ``path``'s bytes: a recording stopped by a crash."""
    with open(path, "r+b") as f:
        f.truncate(int(path.stat().st_size * keep))


@pytest.mark.parametrize("subtype, channels", [("PCM_16", 1), ("PCM_16", 2), ("PCM_24", 2)])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.97])
def test_a_flac_cut_short_is_processed_as_far_as_it_decodes_with_the_warning_a_wav_gets(
        tmp_path, subtype, channels, keep):
    """A FLAC cut short was refused whole ("corrupt after 0 frames"): libsndfile reads it up to the last
    block that decodes, and that audio is the part of a crashed recording worth saving."""
    src = tmp_path / "cut.flac"
    x = _noise(48000, channels)
    sf.write(str(src), x, 48000, subtype=subtype)
    _cut(src, keep)
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    held = s.output_frames
    assert 48000 * keep - 2 * 4096 < held < 48000 * keep + 4096, held  # all the whole blocks that are there
    assert s.warnings == [f"the file is cut short: its header announces 1.00 s (48000 frames) and it holds "
                          f"{held / 48000:.2f} s ({held}); what it holds was processed (a recording stopped by a "
                          f"crash, or a copy not finished?)"], s.warnings
    y, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32", always_2d=True)
    np.testing.assert_allclose(y, x[:held], atol=2 ** -15)  # the recording itself, not noise or silence


def test_a_flac_cut_short_before_its_first_block_ends_is_refused_in_one_sentence(tmp_path):
    src = tmp_path / "cut.flac"
    sf.write(str(src), _noise(48000, 2), 48000)
    _cut(src, 0.05)
    _refused(tmp_path, src, f"input file {str(src)!r} is cut short: its header announces 1.00 s (48000 frames) "
                            "and not one frame of it can be decoded; there is nothing to process")


def test_a_flac_damaged_in_the_middle_is_refused_saying_where(tmp_path):
    """It said "corrupt after 0 frames" of a file damaged 0.9 s in (libsndfile throws the failed read away
    whole), which reads as a file that is no good at all."""
    src = tmp_path / "damaged.flac"
    sf.write(str(src), _noise(96000), 48000, subtype="PCM_16")
    b = bytearray(src.read_bytes())
    b[len(b) // 2: len(b) // 2 + 200] = bytes(200)  # a burst of zeros halfway: about 1 s in
    src.write_bytes(bytes(b))
    msg = _refused(tmp_path, src, "is damaged at about ", tmp_path / "out.wav")
    at = int(msg.split("(frame ")[1].split(" of 96000)")[0])
    assert 0.3 * 96000 < at < 0.7 * 96000, msg
    assert "does not decode from there" in msg and "`flac -d -F`" in msg and "nothing was written" in msg


@pytest.mark.parametrize("fmt, subtype, channels", [
    ("WAV", "IMA_ADPCM", 2), ("WAV", "MS_ADPCM", 2), ("WAV", "GSM610", 1), ("WAV", "G721_32", 1),
    ("WAV", "NMS_ADPCM_24", 1), ("W64", "IMA_ADPCM", 1), ("AIFF", "IMA_ADPCM", 2), ("AU", "G723_24", 1),
    ("WAV", "ULAW", 2)])
def test_a_compressed_file_cut_short_names_both_lengths_as_plain_pcm_does(tmp_path, fmt, subtype, channels):
    """ADPCM, GSM and G.72x in WAV, AIFF, W64 and AU said nothing when cut short, where PCM in the same
    container warned: the header's data size was turned into frames for PCM sample widths only."""
    src = tmp_path / f"cut.{fmt.lower()}"
    sf.write(str(src), _noise(48000, channels), 48000, format=fmt, subtype=subtype)
    announced = sf.info(str(src)).frames  # ADPCM rounds up to whole blocks
    _cut(src, 0.6)
    held = sf.info(str(src)).frames
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    assert s.output_frames == held < announced
    assert s.warnings == [f"the file is cut short: its header announces {announced / 48000:.2f} s ({announced} "
                          f"frames) and it holds {held / 48000:.2f} s ({held}); what it holds was processed (a "
                          f"recording stopped by a crash, or a copy not finished?)"], s.warnings


def test_an_mp3_cut_short_is_processed_as_far_as_it_goes_with_the_cut_short_warning(tmp_path):
    """An MP3 cut short was padded with silence to the length its header announces, under a warning of its
    own ('the file ended after ... (truncated?)'); it gets the cut-short warning and keeps only its audio."""
    src = tmp_path / "cut.mp3"
    sf.write(str(src), _noise(48000, 2), 48000)
    _cut(src, 0.6)
    s = process_file(src, tmp_path / "out.flac", rtconv.FIR([1.0]), progress=False)
    held = s.output_frames
    assert 0.6 * 48000 - 2304 < held < 0.6 * 48000 + 2304, held
    assert s.warnings == [f"the file is cut short: its header announces 1.00 s (48000 frames) and it holds "
                          f"{held / 48000:.2f} s ({held}); what it holds was processed (a recording stopped by a "
                          f"crash, or a copy not finished?)"], s.warnings


_MP3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)  # MPEG-1 Layer III's bitrate indexes


def _mp3(x, **kw):
    """``x`` written by libsndfile as a 48 kHz MP3, and where its audio frames start: after its Xing/Info frame, which
    LAME leaves out where a frame is too small to hold it (56 kbit/s stereo)."""
    buf = io.BytesIO()
    sf.write(buf, x, 48000, format="MP3", **kw)
    data = buf.getvalue()
    first = 144 * 1000 * _MP3_KBPS[data[2] >> 4] // 48000 + (data[2] >> 1 & 1)
    assert data[:2] == data[first : first + 2] == b"\xff\xfb"
    return data, first if b"Xing" in data[:first] or b"Info" in data[:first] else 0


def _vbr_without_length_header(path, dense_first=True):
    """An MP3 whose bitrate changes after its first 0.1 s (320 then 56 kbit/s, or the other way round) and that has
    no Xing/Info frame to say how long it is; returns the frames its MPEG frames hold (at 48 kHz neither bitrate
    pads a frame: 960 and 168 bytes)."""
    x = _noise(3 * 48000, 2)
    frames = 0
    for part, dense in ((x[:4800], dense_first), (x[4800:], not dense_first)):
        data, first = _mp3(part, bitrate_mode="CONSTANT", compression_level=0.0 if dense else 0.9)
        with open(path, "ab") as f:
            f.write(data[first:])
        size = 960 if dense else 168
        assert (len(data) - first) % size == 0
        frames += (len(data) - first) // size * 1152
    return frames


@pytest.mark.parametrize("dense_first", [True, False], ids=["dense first", "sparse first"])
def test_a_vbr_mp3_without_a_length_header_is_processed_to_its_end_not_to_libsndfiles_guess(tmp_path, dense_first):
    """libsndfile guesses such a file's length from its size and first frame's bitrate and reads stop there: a
    dense first frame lost 2.4 of its 3.07 s without a word, and a sparse one was called cut short (announcing
    16.88 s)."""
    src = tmp_path / "vbr.mp3"
    whole = _vbr_without_length_header(src, dense_first)
    guess = sf.info(str(src)).frames
    assert (guess < whole // 2) if dense_first else (guess > 2 * whole), (guess, whole)  # the defect, still there
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    assert s.output_frames == whole and s.warnings == [], (s.output_frames, whole, s.warnings)
    y, _ = sf.read(str(tmp_path / "out.wav"))
    assert y.shape == (whole, 2) and np.sqrt(np.mean(y[-10000:-3000] ** 2)) > 0.03  # the end is the audio's


CBR_160 = {"bitrate_mode": "CONSTANT", "compression_level": 0.5}  # without a level, libsndfile's CONSTANT is VBR


@pytest.mark.parametrize("kind", ["CBR with its Info frame", "CBR without it", "VBR with its Xing frame"])
def test_an_mp3_with_a_length_header_or_a_constant_bitrate_is_read_whole_without_a_word(tmp_path, kind):
    src = tmp_path / "take.mp3"
    data, first = _mp3(_noise(3 * 48000, 2), **({} if kind.startswith("VBR") else CBR_160))
    assert first
    src.write_bytes(data[first:] if kind == "CBR without it" else data)
    frames = sf.info(str(src)).frames
    assert 3 * 48000 <= frames < 3 * 48000 + 3 * 1152
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    assert s.output_frames == frames and s.warnings == [], (s.output_frames, frames, s.warnings)


def test_a_vbr_mp3_libsndfile_cannot_read_past_its_guess_is_refused_not_cut(tmp_path, monkeypatch):
    """libsndfile decodes past its guess only when the file is shown to it with zeros after its end; where that
    does not reach the last frame, the file is refused before anything is written rather than lose its end."""
    from rtconv import cutshort

    padded = cutshort._Padded
    monkeypatch.setattr(cutshort, "_Padded", lambda raw, size, extra, hide=None: padded(raw, size, 0, hide))
    src = tmp_path / "vbr.mp3"
    whole = _vbr_without_length_header(src)
    guess = sf.info(str(src)).frames
    _refused(tmp_path, src, f"input file {str(src)!r} is a variable-bitrate MP3 without a length header (Xing/Info): "
                            f"libsndfile would read {guess / 48000:.2f} s of its {whole / 48000:.2f} s; convert it "
                            f"first, e.g. `ffmpeg -i {shlex.quote(str(src))} {shlex.quote(str(tmp_path / 'vbr.flac'))}`, "
                            "and process that.")


def _with_bytes_in_the_middle(data, first, junk):
    """``data`` (an MP3 of 480-byte frames, its audio frames from ``first``) with ``junk`` put in after 100 frames."""
    at = first + 100 * 480
    return data[:at] + junk + data[at:]


_JUNK = np.random.default_rng(1).integers(0, 256, 3000).astype(np.uint8).tobytes()


@pytest.mark.parametrize("length_header", [True, False], ids=["with its Info frame", "without it"])
def test_an_mp3_damaged_in_the_middle_is_refused_saying_where_not_called_cut_short(tmp_path, length_header):
    """libmpg123 skips up to 1 KiB that is not a frame and past more gives nothing, without an error: with a length
    header the file was called cut short and half of it processed; without one it was processed to libsndfile's
    guess of its length and the rest filled with silence under a "truncated?" warning."""
    data, first = _mp3(_noise(3 * 48000, 2), **CBR_160)
    assert first and (len(data) - first) % 480 == 0
    src = tmp_path / "damaged.mp3"
    src.write_bytes(_with_bytes_in_the_middle(data, first, _JUNK)[0 if length_header else first :])
    msg = _refused(tmp_path, src, f"input file {str(src)!r} is damaged at about 2.")
    at = float(msg.split(" at about ")[1].split(" s ")[0])
    assert 2.3 < at < 2.45, msg  # 100 frames of 1152 in, less the encoder's delay
    assert msg.endswith(f"and does not decode from there; nothing was written: convert it with a decoder that skips "
                        f"damaged frames, e.g. `ffmpeg -i {shlex.quote(str(src))} "
                        f"{shlex.quote(str(tmp_path / 'damaged.flac'))}`, and process that."), msg


@pytest.mark.parametrize("junk", [bytes(10), b"\x12" * 10, b"ID3\x04\x00\x00\x00\x00\x01\x00" + bytes(128)],
                         ids=["zeros", "junk", "an ID3v2 tag"])
@pytest.mark.parametrize("length_header", [True, False], ids=["with its Info frame", "without it"])
def test_an_mp3_with_a_few_bytes_between_its_frames_is_read_whole_without_a_word(tmp_path, junk, length_header):
    """What libmpg123 skips (a few stray bytes, a tag between two files joined) is not damage."""
    data, first = _mp3(_noise(3 * 48000, 2), **CBR_160)
    whole = tmp_path / "whole.mp3"
    whole.write_bytes(data[0 if length_header else first :])
    src = tmp_path / "joined.mp3"
    src.write_bytes(_with_bytes_in_the_middle(data, first, junk)[0 if length_header else first :])
    ref = process_file(whole, tmp_path / "whole.wav", rtconv.FIR([1.0]), progress=False)
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    assert s.output_frames == ref.output_frames and s.warnings == [], (s.output_frames, ref.output_frames, s.warnings)


@pytest.mark.parametrize("vbr", [True, False], ids=["VBR", "CBR"])
def test_an_mp3_without_a_length_header_cut_inside_a_frame_is_called_cut_short(tmp_path, vbr):
    """Nothing in such a file says its length, but a last frame the file ends inside does say it was cut: it was
    processed to its last whole frame without a word."""
    src = tmp_path / "cut.mp3"
    if vbr:
        _vbr_without_length_header(src)
        data = src.read_bytes()
    else:
        data, first = _mp3(_noise(3 * 48000, 2), **CBR_160)
        data = data[first:]
    src.write_bytes(data[: len(data) * 6 // 10 + 77])
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    held = s.output_frames
    assert 1.4 * 48000 < held < 1.9 * 48000, held
    assert s.warnings == [f"the file is cut short: it holds {held / 48000:.2f} s ({held} frames) and does not say how "
                          "much more it had; what it holds was processed (a recording stopped by a crash, or a copy "
                          "not finished?)"], s.warnings


def test_two_mp3s_joined_at_different_rates_are_refused_not_cut_to_the_first(tmp_path):
    """libsndfile decodes such a file up to the second stream and stops without an error: it was processed as
    the first part alone, without a word (before the frame scan found frames again after junk: to the size's
    guess, the rest silence under a "truncated?" warning)."""
    def frames(x, rate):
        data, _ = io.BytesIO(), None
        sf.write(data, x, rate, format="MP3", **CBR_160)
        data = data.getvalue()
        size = 144 * 160000 // rate + (data[2] >> 1 & 1)
        return data[size:] if b"Info" in data[:size] else data

    src = tmp_path / "joined.mp3"
    tag = b"ID3\x04\x00\x00\x00\x00\x01\x00" + bytes(128)  # the second file's own tag
    src.write_bytes(frames(_noise(2 * 48000, 2), 48000) + tag + frames(_noise(2 * 44100, 2), 44100))
    msg = _refused(tmp_path, src, f"input file {str(src)!r} stops decoding at about 2.0")
    assert "KiB that are not audio of its kind follow (damage, or another MP3 joined on at another sample rate); " \
           "nothing was written: convert it with a decoder that skips damaged frames, e.g. `ffmpeg -i " in msg, msg


@pytest.mark.parametrize("kw", [CBR_160, {}], ids=["CBR", "VBR"])
def test_mp3s_joined_end_to_end_are_read_whole_with_a_note_not_cut_to_the_first(tmp_path, kw):
    """`cat a.mp3 b.mp3 > ab.mp3` keeps a's Xing/Info header, which announces a's length: libsndfile read 2 s of
    the 5 and rtconv wrote those without a word."""
    parts, xs = [], [_noise(2 * 48000, 2), 0.5 * _noise(3 * 48000, 2)[::-1]]
    for x in xs:
        buf = io.BytesIO()
        sf.write(buf, x, 48000, format="MP3", **kw)
        parts.append(buf.getvalue())
    src = tmp_path / "ab.mp3"
    src.write_bytes(parts[0] + parts[1])
    assert sf.info(str(src)).frames == 2 * 48000  # the defect, still there
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    held = s.output_frames
    assert 5 * 48000 < held < 5 * 48000 + 6 * 1152, held  # both parts, with the encoders' delays and padding
    assert s.warnings == ["the file holds MP3s joined end to end: its length header (Xing/Info) announces 2.00 s and "
                          f"its frames hold {held / 48000:.2f} s; all of it was read, as one stream"], s.warnings
    y, _ = sf.read(str(tmp_path / "out.wav"))
    level = [np.sqrt(np.mean(y[int(a * 48000) : int(b * 48000)] ** 2)) for a, b in ((0.2, 1.8), (2.3, 4.8))]
    assert 0.08 < level[0] < 0.12 and 0.04 < level[1] < 0.06, level  # each part at its own level, the second whole
    assert np.sqrt(np.mean(y[-20000:-3000] ** 2)) > 0.04  # the end is the second part's


def test_an_mp3_with_its_length_header_and_large_tags_after_it_is_read_whole_without_a_word(tmp_path):
    data, first = _mp3(_noise(3 * 48000, 2))
    assert first
    src = tmp_path / "tagged.mp3"
    src.write_bytes(data + b"APETAGEX" + bytes(20000) + b"TAG" + bytes(125))
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    assert s.warnings == [] and s.output_frames == sf.info(str(src)).frames, s


def test_an_mp3_with_a_large_id3v2_tag_at_its_end_is_read_whole_without_a_word(tmp_path):
    """ID3v2.4 allows the tag after the audio; one with cover art is tens of KiB that are not frames."""
    data, first = _mp3(_noise(3 * 48000, 2), **CBR_160)
    whole = tmp_path / "whole.mp3"
    whole.write_bytes(data[first:])
    art = 40000
    src = tmp_path / "tagged.mp3"
    size = bytes((art >> s) & 0x7F for s in (21, 14, 7, 0))
    src.write_bytes(data[first:] + b"ID3\x04\x00\x10" + size + bytes(art) + b"3DI\x04\x00\x10" + size)
    ref = process_file(whole, tmp_path / "whole.wav", rtconv.FIR([1.0]), progress=False)
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    assert s.warnings == [] and s.output_frames == ref.output_frames, (s.warnings, s.output_frames, ref.output_frames)


def test_junk_after_an_mp3s_frames_that_holds_a_header_like_pattern_is_not_called_cut_short(tmp_path):
    """A frame header's four bytes inside junk after the last frame, too near the end for its frame: the
    scan that looks for frames again after junk took them for a frame the file was cut inside."""
    data, first = _mp3(_noise(3 * 48000, 2), **CBR_160)
    frames = data[first:]
    whole = tmp_path / "whole.mp3"
    whole.write_bytes(frames)
    src = tmp_path / "junk.mp3"
    src.write_bytes(frames + bytes(range(1, 201)) + frames[:4] + bytes(100))
    ref = process_file(whole, tmp_path / "whole.wav", rtconv.FIR([1.0]), progress=False)
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    assert s.warnings == [] and s.output_frames == ref.output_frames, (s.warnings, s.output_frames, ref.output_frames)


class _FailingDisk:
    """A file whose reads past byte ``bad`` fail as a dying disk's do (EIO), once ``armed[0]`` is set."""

    def __init__(self, raw, bad, armed):
        self._raw, self._bad, self._armed = raw, bad, armed

    def seek(self, *a):
        return self._raw.seek(*a)

    def readinto(self, b):
        if self._armed[0] and self._raw.tell() + len(b) > self._bad:
            raise OSError(errno.EIO, "Input/output error")
        return self._raw.readinto(b)


def _fail_past_half_once_reading(monkeypatch, src, armed):
    """Reads of ``src`` through the reader's padded view fail past its middle once ``armed[0]`` is set, which
    reading its audio does."""
    from rtconv import audio, cutshort

    padded, chunks = cutshort._Padded, audio.Reader.chunks
    monkeypatch.setattr(cutshort, "_Padded", lambda raw, size, extra, hide=None: padded(
        _FailingDisk(raw, src.stat().st_size // 2, armed), size, extra, hide))

    def arm_then_read(self):
        armed[0] = True
        yield from chunks(self)

    monkeypatch.setattr(audio.Reader, "chunks", arm_then_read)


@pytest.mark.parametrize("when", ["opening", "reading"])
def test_a_disk_error_under_a_vbr_mp3_read_past_its_guess_is_refused_not_padded_with_silence(
        tmp_path, monkeypatch, capfd, when):
    """Such a file is read through a view with zeros after its end, which libsndfile calls back through cffi: an
    OSError there printed a traceback (hidden only by the MP3 decoder's silenced stderr) and read as the file's
    end, so the output was the audio up to the failure and then silence under a "truncated?" warning, or, when
    opening, the file was called an MP3 libsndfile cannot read past its guess."""
    src = tmp_path / "vbr.mp3"
    _vbr_without_length_header(src)
    _fail_past_half_once_reading(monkeypatch, src, [when == "opening"])
    _refused(tmp_path, src, f"cannot read input file {str(src)!r}: Input/output error; nothing was written: check "
                            "the disk, or copy the file elsewhere and process the copy.")
    assert "Traceback" not in capfd.readouterr().err


def test_a_disk_error_after_the_first_chunk_says_how_far_the_file_was_read(tmp_path, monkeypatch):
    src = tmp_path / "vbr.mp3"
    _vbr_without_length_header(src)
    _fail_past_half_once_reading(monkeypatch, src, [False])
    monkeypatch.setattr("rtconv.files.process._READ_CHUNK", 4096)
    msg = _refused(tmp_path, src, f"cannot read input file {str(src)!r}: Input/output error after ")
    seconds = float(msg.split(" after ")[1].split(" s ")[0])
    assert 0.1 < seconds < 3.0, msg


@pytest.fixture(scope="module")
def eio_shim(tmp_path_factory):
    """tests/data/eio_shim.c built: under LD_PRELOAD, reads of the file EIO_PATH fail from byte EIO_AT (to EIO_END,
    where given) with EIO, in libsndfile as in Python, as a failing disk's do; the pages of a mapping that hold
    those bytes are unreadable (a fault kills the process, as a failed page-in's SIGBUS does)."""
    if sys.platform != "linux":
        pytest.skip("LD_PRELOAD and /proc/self/fd are Linux's")
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to build the failing-disk shim (apt-get install gcc)"
    out = tmp_path_factory.mktemp("eio") / "eio_shim.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(Path(__file__).parent / "data/eio_shim.c"),
                    "-ldl"], check=True)
    return out


def _process_on_failing_disk(shim, src, out, at, end=None):
    env = dict(os.environ, LD_PRELOAD=str(shim), EIO_PATH=str(src), EIO_AT=str(at))
    if end is not None:
        env["EIO_END"] = str(end)
    return subprocess.run([sys.executable, "-m", "rtconv", "process", str(src), str(out)], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("fmt, subtype, ext, where", [
    ("WAV", "PCM_16", "wav", "middle"), ("FLAC", "PCM_16", "flac", "middle"), ("OGG", "VORBIS", "ogg", "middle"),
    ("WAV", "PCM_16", "wav", "header"), ("FLAC", "PCM_16", "flac", "header")])
def test_a_disk_error_under_a_plain_file_blames_the_disk_not_the_file(tmp_path, eio_shim, fmt, subtype, ext, where):
    """libsndfile reads a plain file itself and calls a failed read a "System error": rtconv said the file was
    damaged at about N s ("repair or re-encode it") or not audio it can read, of a file that is whole."""
    src = tmp_path / f"in.{ext}"
    t = np.arange(4 * 48000) / 48000
    sf.write(str(src), (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)))[:, None],
             48000, format=fmt, subtype=subtype)
    size = src.stat().st_size
    fine = _process_on_failing_disk(eio_shim, src, tmp_path / "fine.wav", size + 1)  # the shim alone changes nothing
    assert fine.returncode == 0 and (tmp_path / "fine.wav").exists(), fine.stderr
    out = tmp_path / "out.wav"
    r = _process_on_failing_disk(eio_shim, src, out, size // 2 if where == "middle" else 10)
    err = r.stderr.strip()
    assert r.returncode == 1 and err.startswith(f"rtconv process: error: cannot read input file {str(src)!r}: "
                                                "Input/output error"), err
    assert "check the disk, or copy the file elsewhere and process the copy." in err and "\n" not in err, err
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_a_disk_error_inside_an_mp3_without_a_length_header_is_refused_not_read_to_the_guess(tmp_path, eio_shim):
    """The frame scan that finds such a file's length read it through mmap, where a bad stretch in its middle
    (which libsndfile's open, reading its start and end, never meets) killed the process by signal: no sentence.
    Read with pread, the scan meets the error as an OSError and the file is refused."""
    src = tmp_path / "vbr.mp3"
    _vbr_without_length_header(src)
    size = src.stat().st_size
    out = tmp_path / "out.wav"
    r = _process_on_failing_disk(eio_shim, src, out, size // 2, size // 2 + 4096)
    err = r.stderr.strip()
    assert r.returncode == 1, (r.returncode, err)  # -11 (SIGSEGV) through mmap
    assert err == (f"rtconv process: error: cannot read input file {str(src)!r}: Input/output error; nothing was "
                   "written: check the disk, or copy the file elsewhere and process the copy."), err
    assert not out.exists() and not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("fmt, subtype, ext", [("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "opus")])
def test_an_ogg_cut_short_is_called_cut_short_though_it_gives_no_length(tmp_path, fmt, subtype, ext):
    """Ogg holds no total length (libsndfile counts up to the last whole page), so a Vorbis or Opus file cut
    short lost its end without a word; its last page, which closes the stream, tells it is cut short."""
    src = tmp_path / f"cut.{ext}"
    sf.write(str(src), _noise(4 * 48000, 1), 48000, format=fmt, subtype=subtype)
    whole = process_file(src, tmp_path / "whole.wav", rtconv.FIR([1.0]), progress=False)
    assert not whole.warnings, whole.warnings
    _cut(src, 0.6)
    held = sf.info(str(src)).frames
    s = process_file(src, tmp_path / "out.wav", rtconv.FIR([1.0]), progress=False)
    assert s.output_frames == held and 48000 < held < 3 * 48000
    assert s.warnings == [f"the file is cut short: it holds {held / 48000:.2f} s ({held} frames) and does not say "
                          f"how much more it had; what it holds was processed (a recording stopped by a crash, or "
                          f"a copy not finished?)"], s.warnings


@pytest.mark.parametrize("fmt, subtype, ext", [("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "opus")])
def test_an_ogg_cut_short_before_its_first_block_ends_is_refused_as_cut_short(tmp_path, fmt, subtype, ext):
    """It was refused as holding no audio (Vorbis) or as not audio (Opus): the sentence says what happened."""
    src = tmp_path / f"cut.{ext}"
    sf.write(str(src), _noise(48000, 1), 48000, format=fmt, subtype=subtype)
    data = src.read_bytes()
    src.write_bytes(data[: data.index(b"OggS", data.index(b"OggS", 1) + 1) + 100])  # headers, a part of the audio
    _refused(tmp_path, src, f"input file {str(src)!r} is cut short before the end of its first block of audio; "
                            "there is nothing to process.")


def test_a_wav_cut_short_before_its_first_frame_ends_is_refused_as_cut_short(tmp_path):
    """It was refused as holding no audio, as an empty recording is: the sentence says what happened."""
    src = tmp_path / "cut.wav"
    sf.write(str(src), _noise(48000, 1), 48000, subtype="PCM_16")
    data = src.read_bytes()
    src.write_bytes(data[: data.index(b"data") + 9])  # the header and one byte of the first frame
    _refused(tmp_path, src, f"input file {str(src)!r} is cut short: its header announces 1.00 s (48000 frames) "
                            "and not one frame of it can be decoded; there is nothing to process.")


def test_quiet_decoders_gives_stderr_back_after_an_error_and_leaves_other_threads_alone(capfd):
    """It silences fd 2 for libmpg123's own lines around MP3 reads: never for good, never for another thread."""
    import os
    import threading

    from rtconv.audio import quiet_decoders

    with pytest.raises(RuntimeError), quiet_decoders():
        os.write(2, b"hidden\n")
        raise RuntimeError("a failed read")
    os.write(2, b"after\n")

    def elsewhere():
        with quiet_decoders():
            os.write(2, b"from a thread\n")

    t = threading.Thread(target=elsewhere)
    t.start()
    t.join()
    assert capfd.readouterr().err == "after\nfrom a thread\n"


@pytest.mark.parametrize("hide", [None, (0, 5), (10, 30), (90, 100)])
def test_the_padded_view_reads_the_file_without_its_hidden_bytes_and_zeros_after_it(tmp_path, hide):
    from rtconv.cutshort import _Padded

    data = bytes(range(100))
    path = tmp_path / "bytes"
    path.write_bytes(data)
    a, b = hide or (100, 100)
    expected = data[:a] + data[b:] + bytes(7)
    with open(path, "rb") as raw:
        view = _Padded(raw, 100, 7, hide)
        got = bytearray()
        for size in (1, 3, 8, 13, 64, 50):  # reads that start and end inside, before and after the hidden bytes
            buf = bytearray(size)
            n = view.readinto(buf)
            got += buf[:n]
        assert bytes(got) == expected and view.readinto(bytearray(4)) == 0
        view.seek(-7, 2)
        buf = bytearray(9)
        assert view.readinto(buf) == 7 and bytes(buf[:7]) == bytes(7)
        view.seek(max(0, a - 2))
        buf = bytearray(4)
        assert view.readinto(buf) == 4 and bytes(buf) == expected[max(0, a - 2) : max(0, a - 2) + 4]
