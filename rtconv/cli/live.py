"""``rtconv live``: microphone -> model -> speakers."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time

from ..dcblock import offset_note
from ..levelguard import stream_level_note
from ..errors import ConfigError, RtconvError
from ..live.gate import GATE_DEFAULTS
from ..live.settings import ENGINES, LIVE_QUALITY, QUALITIES
from .common import (attenuation_db, device_latency, floor_db, gain_db, live_block, nonnegative_seconds, positive_int,
                     positive_seconds, probability, unit_fraction)

HELP = "run a model live: microphone -> model -> speakers, with hot swap and recording"

DESCRIPTION = """\
Run a model on live audio with a few milliseconds of delay.

The model runs with carried state exactly as offline processing would; if it
was trained at another sample rate than the device's, streaming resamplers
convert on the way in and out (their delay is reported).  The output passes
a safety limiter at -1 dBFS unless --no-limiter.  A model that fails
(exception, NaN) passes the input dry for that block and the stream goes on.

Latency = model + resampler + gate + device; the breakdown is printed at exit, and --stats-json writes it with the dropout
counters and block times.

--record [DIR] writes the input and the processed output as float WAV files
with a shared timestamped name (DIR defaults to recordings/); they are
flushed every half second, so even a crash leaves playable files.

--gate silences the output between speech: the voice-activity detector
(models/vad.safetensors, or --vad PATH) judges each 10 ms of the input's
channel mix; the gate opens at --gate-threshold, stays open --gate-hold
seconds after the speech, then fades with a --gate-release time constant
to --gate-floor dB (default: silence).  The output waits for the detector's
decisions (9.98 ms for the shipped one, 6 ms more than the denoiser's own
4 ms); the latency breakdown names it "gate".  --vad alone shows the
speech probability in the status line without gating and adds no latency.

--virtual-mic [NAME] makes rtconv the microphone of other programs on a
desktop with PulseAudio or PipeWire: it creates a source NAME (default
rtconv) that call and recording apps list as "NAME (denoised)", plays the
processed audio into it, and removes it on exit (Ctrl-C and SIGTERM too; a
killed run's leftovers are replaced by the next run).  The microphone it
reads is the default one as it was before.  Needs pactl (pulseaudio-utils)
and PortAudio's ALSA "pulse" device (libasound2-plugins, or pipewire-alsa).
With JACK, --connect PORT[,PORT] wires rtconv's outputs to other programs'
inputs (output k to the k-th port named; mono to every port named) instead
of the speakers PortAudio connects by itself (name system:playback_1 too to
hear it).

--watch reloads the model file whenever it is rewritten (e.g. by
`rtconv train`) and crossfades to it without stopping.

Ctrl-C stops cleanly and finalizes the recordings.

examples:
  rtconv devices
  rtconv live
  rtconv live --model models/speech-band.safetensors --input-device 2 --output-device 2
  rtconv live --hostapi jack --block-size 128 --record --duration 60 --stats-json stats.json
  rtconv live --model runs/my.safetensors --watch
  rtconv live --gate --gate-hold 0.4 --gate-floor -30
  rtconv live --virtual-mic                 # then pick "rtconv (denoised)" in the call app
  rtconv live --hostapi jack --connect obs:in_1
"""


def configure(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--model", "-m", metavar="PATH", help="checkpoint to run, a path or a name in models/ (default: the shipped default denoiser)")
    g.add_argument("--watch", action="store_true", help="swap the model in again whenever its file is rewritten")
    g.add_argument("--keep-dc", dest="dc_block", action="store_false",
                   help="give a denoiser or VAD the device's samples as they are; by default a DC offset (a "
                        "microphone's constant bias, which they never met in training) is removed first, "
                        "with no delay")
    g.add_argument("--keep-level", dest="level_guard", action="store_false",
                   help="give a denoiser loud speech at its own level; by default speech louder than the "
                        "denoiser was trained at (-26 dBFS active level) goes in lowered to it by a slow gain, "
                        "set from the speech already put out, and comes out raised back")
    g = parser.add_argument_group("audio")
    g.add_argument("--input-device", "-i", metavar="D", help="input device: index or part of its name (default: system default)")
    g.add_argument("--output-device", "-o", metavar="D", help="output device: index or part of its name (default: system default)")
    g.add_argument("--hostapi", metavar="H", help="host API to pick devices from, e.g. jack or alsa")
    g.add_argument("--sample-rate", "--samplerate", "-r", dest="sample_rate", type=positive_int, metavar="HZ",
                   help="device rate (default: the model's if the device takes it, else the device's)")
    g.add_argument("--block-size", "-b", type=live_block, default=128, metavar="N", help="frames per audio block (default: %(default)s)")
    g.add_argument("--device-latency", type=device_latency, metavar="L",
                   help="what PortAudio buffers on each device: low, high or seconds; more delay, fewer dropouts "
                        "where the path to the device is not realtime (default: low; 0.02 with --virtual-mic)")
    g.add_argument("--channels", "-c", type=positive_int, default=1, metavar="C", help="channels in and out (default: %(default)s)")
    g.add_argument("--resample-quality", choices=QUALITIES, default=LIVE_QUALITY,
                   help="resampler when model and device rates differ: LL, a minimum-phase filter (about 0.1 ms "
                        "per direction), or a soxr quality QQ..VHQ (linear phase; LQ adds about 39 ms at a "
                        "16 kHz device, HQ 67 ms) (default: %(default)s)")
    g.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="compute threads, torch's and NumPy's BLAS (default: %(default)s)")
    g.add_argument("--engine", choices=ENGINES, default="torch",
                   help="what computes each block: torch (rtconv's cells; the fastest for the denoiser), or the "
                        "model's ONNX step in onnxruntime (the onnx extra; about 3x faster per block for "
                        "sample-rate convolution nets, slower for the denoiser) (default: %(default)s)")
    g = parser.add_argument_group("sound")
    g.add_argument("--bypass", action="store_true", help="start bypassed (input passes, delayed by the latency)")
    g.add_argument("--wet", type=unit_fraction, default=1.0, metavar="X", help="dry/wet mix, 0..1 (default: %(default)s)")
    g.add_argument("--atten-lim", type=attenuation_db, metavar="DB",
                   help="denoiser strength: attenuate no band by more than DB dB (default: the model's own)")
    g.add_argument("--linked", action="store_true",
                   help="with --channels 2 or more: one denoiser gain for all channels (the stereo image stays)")
    g.add_argument("--gain", type=gain_db, default=0.0, metavar="DB", help="output gain in dB (default: %(default)s)")
    g.add_argument("--no-limiter", dest="limiter", action="store_false", help="turn off the -1 dBFS safety limiter")
    g = parser.add_argument_group("routing")
    g.add_argument("--virtual-mic", nargs="?", const="rtconv", metavar="NAME",
                   help="PulseAudio/PipeWire: play into a virtual microphone NAME (default: %(const)s) that other "
                        "programs can record from, instead of the speakers")
    g.add_argument("--connect", metavar="PORTS",
                   help="JACK: connect rtconv's outputs to these ports, comma-separated (e.g. obs:in_1,obs:in_2), "
                        "instead of the speakers (add system:playback_1 to hear it too)")
    g = parser.add_argument_group("speech gate")
    g.add_argument("--gate", action="store_true", help="silence the output between speech (needs a VAD; default: off)")
    g.add_argument("--vad", nargs="?", const="vad", metavar="PATH",
                   help="voice-activity model to show and gate with (default with --gate: %(const)s, the shipped one)")
    # None when not given: they act only with --gate, and one given without it is refused rather than ignored
    g.add_argument("--gate-threshold", type=probability, metavar="P",
                   help="speech probability that opens the gate; it closes below P - 0.15 "
                        f"(default: {GATE_DEFAULTS['threshold']:g})")
    g.add_argument("--gate-hold", type=nonnegative_seconds, metavar="S",
                   help=f"seconds the gate stays open after the speech (default: {GATE_DEFAULTS['hold']:g})")
    g.add_argument("--gate-release", type=nonnegative_seconds, metavar="S",
                   help=f"time constant of the fade to the floor, seconds (default: {GATE_DEFAULTS['release']:g})")
    g.add_argument("--gate-floor", type=floor_db, metavar="DB",
                   help="gain between speech in dB, or 'silence' (default: silence)")
    g = parser.add_argument_group("run")
    g.add_argument("--record", nargs="?", const="recordings", metavar="DIR", help="record input and output to DIR (default: %(const)s)")
    g.add_argument("--duration", "-d", type=positive_seconds, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    g.add_argument("--stats-json", metavar="PATH", help="write the final stats as JSON to PATH")
    g.add_argument("--quiet", "-q", action="store_true", help="no live status line")


def _dbfs(values) -> str:
    """The loudest channel's level for a status line; silence as -inf, not -200."""
    v = max(values) if values else -math.inf
    return "  -inf" if v <= -120 else f"{v:6.1f}"


def status_line(s: dict, meters: dict | None = None) -> str:
    """One terminal line: meters (so a user sees the microphone works), speech, dropouts, block time."""
    b = s["block_ms"]
    levels = "" if meters is None else (
        f"in {_dbfs(meters['in_rms_db'])} out {_dbfs(meters['out_rms_db'])} dBFS"
        f"{'  CLIP' if meters.get('in_clip') else ''}{'  LIMIT' if meters.get('out_limited') else ''}  ")
    gate = s.get("gate")
    if gate:
        levels += f"speech {gate['probability']:.2f}" + (
            f" gate {'open' if gate['open'] else 'closed'}" if gate["on"] else "") + "  "
    return (f"\r{s['seconds']:7.1f} s  {levels}dropouts {s['dropouts']}  "
            f"block {b['median']:.2f}/{b['p99']:.2f} ms of {b['budget']:.2f}  load {s['cpu_load']:.0%}  "
            f"latency {s['latency']['total_ms']:.1f} ms  errors {s['model_errors']}  ")


def format_stats(s: dict) -> str:
    """The exit summary, a few aligned lines."""
    b, lat = s["block_ms"], s["latency"]
    lines = [
        f"ran {s['seconds']:.1f} s, {s['blocks']} blocks of {s['block_size']} at {s['sample_rate']} Hz "
        f"(model at {s['model_rate']} Hz)",
        f"dropouts: {s['dropouts']} blocks ({s['input_overflows']} input overflows, {s['output_underflows']} output "
        f"underflows; one xrun is often both), {s['resampler_underruns']} resampler underruns",
        f"model: {s['model_errors']} failed blocks, {s['nonfinite_samples']} non-finite input samples, {s['swaps']} swaps",
        f"block time: median {b['median']:.3f} ms, p99 {b['p99']:.3f} ms, max {b['max']:.3f} ms of a "
        f"{b['budget']:.3f} ms budget (CPU load {s['cpu_load']:.0%})",
        f"latency: {lat['total_ms']:.1f} ms = model {lat['model_ms']:.1f} + resampler {lat['resampler_ms']:.1f} + "
        + (f"gate {lat['gate_ms']:.1f} + " if lat.get("gate_ms") else "") +
        f"device in {lat['device_in_ms']:.1f} / out {lat['device_out_ms']:.1f}",
    ]
    dc = offset_note(s.get("dc_offset"))
    if dc:
        lines.append(dc)
    loud = stream_level_note(s.get("level_gain_min_db"))
    if loud:
        lines.append(loud)
    rt = s.get("audio_thread_realtime")
    if rt is not None:
        lines.append("scheduling: the audio thread " + ("has realtime priority" if rt else "has NO realtime priority")
                     + (f"; {s['threads_lent_realtime']} helper threads lent the lowest realtime priority"
                        if s.get("threads_lent_realtime") else ""))
    gate = s.get("gate")
    if gate:
        lines.append(f"speech gate: {'on' if gate['on'] else 'off'}, opened {gate['opened']} times, last "
                     f"probability {gate['probability']:.2f}" + (f", {gate['vad_errors']} VAD failures (gate left open)"
                                                                 if gate["vad_errors"] else ""))
    rec = s.get("recording")
    if rec:
        lines.append(f"recorded {rec['frames']} frames to {', '.join(rec['paths'])}"
                     + (f" ({rec['dropped']} frames dropped)" if rec["dropped"] else "")
                     + (f"; {rec['error']}" if rec["error"] else ""))
    return "\n".join(lines)


class _Reader:
    """``sys.stderr`` for a session: once its reader has gone (``rtconv live 2>&1 | head -1``, a closed
    terminal), further messages are dropped instead of raising, so the session runs as asked and its
    recordings are whole rather than cut off by the first message after the pipe closed."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self._stream.write(text)
            except (BrokenPipeError, OSError, ValueError):  # ValueError: the file object itself was closed
                self._leave()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self._leave()

    def _leave(self) -> None:
        self.gone = True
        try:  # what is still buffered, and C libraries' own messages, go nowhere instead of failing again
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, self._stream.fileno())
            os.close(fd)
        except (OSError, ValueError, AttributeError):
            pass

    def isatty(self) -> bool:
        return not self.gone and self._stream.isatty()

    def __getattr__(self, name):
        return getattr(self._stream, name)


_GATE_OPTIONS = {"gate_threshold": "threshold", "gate_hold": "hold", "gate_release": "release",
                 "gate_floor": "floor_db"}


def _check_options(args) -> None:
    """Options that would be silently ignored in this combination are refused, each in one sentence."""
    if args.virtual_mic is not None and args.connect:
        raise ConfigError("--virtual-mic and --connect do not go together: the first is for PulseAudio/PipeWire, "
                          "the second for JACK; pick one.")
    for dest, key in _GATE_OPTIONS.items():
        flag = "--" + dest.replace("_", "-")
        if getattr(args, dest) is None:
            setattr(args, dest, GATE_DEFAULTS[key])
        elif not args.gate:
            raise ConfigError(f"{flag} sets the speech gate, which is off; add --gate to turn it on, or leave "
                              f"{flag} out.")
    if args.linked and args.channels < 2:
        raise ConfigError(f"--linked links the denoiser's gains across channels, and the stream has "
                          f"{args.channels}; add --channels 2 (a stereo microphone), or leave --linked out.")


def _settings(args, model_rate):
    from ..live import StreamSettings, pick_sample_rate

    st = StreamSettings(channels=args.channels, block_size=args.block_size, hostapi=args.hostapi,
                        input_device=args.input_device, output_device=args.output_device,
                        resample_quality=args.resample_quality, threads=args.threads, engine=args.engine,
                        record_dir=args.record, dc_block=args.dc_block, level_guard=args.level_guard)
    if args.device_latency is not None:  # else the settings' own default
        st = st.replace(device_latency=args.device_latency)
    return st.replace(sample_rate=args.sample_rate or pick_sample_rate(st, model_rate))


def run(args) -> int:
    err, sys.stderr = sys.stderr, _Reader(sys.stderr)
    try:
        return _run(args)
    finally:
        sys.stderr = err


def _run(args) -> int:
    from .. import checkpoint
    from ..live import LocalSession
    from ..live.client import connect_outputs, jack_clients

    _check_options(args)
    if args.stats_json:  # checked now: a session's stats are written at its end
        from pathlib import Path

        from ..errors import check_output_file

        where = f"--stats-json {args.stats_json!r}"
        try:  # a missing folder is made, as --record makes its own
            Path(args.stats_json).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{where}: its folder cannot be made ({e.strerror or e}); choose another path.") from None
        check_output_file(where, args.stats_json)
    path = checkpoint.resolve(args.model)
    switches = {}
    if args.atten_lim is not None:
        switches["attenuation_limit_db"] = args.atten_lim
    if args.linked:
        switches["linked"] = True
    model_rate = checkpoint.read_metadata(path).get("sample_rate")
    vmic = None
    if args.virtual_mic is not None:
        from ..live.virtual_mic import VirtualMic, check_name

        check_name(args.virtual_mic)
        if args.hostapi is None:
            args.hostapi = "ALSA"  # the 'pulse' device lives there
        for side in ("input_device", "output_device"):
            if getattr(args, side) is None:
                setattr(args, side, "pulse")
        if args.sample_rate is None:
            args.sample_rate = int(model_rate or 48000)
        if args.device_latency is None:
            from ..live.virtual_mic import DEVICE_LATENCY

            args.device_latency = DEVICE_LATENCY
    settings = _settings(args, model_rate)
    if args.virtual_mic is not None:
        settings = settings.replace(output_channels=args.channels)
    rate = settings.sample_rate
    vad = args.vad or ("vad" if args.gate else None)
    vad_path = None if vad is None else checkpoint.resolve(vad)
    controls = dict(bypass=args.bypass, wet=args.wet, gain_db=args.gain, limiter=args.limiter)
    if vad_path is not None:
        controls.update(gate=args.gate, gate_threshold=args.gate_threshold, gate_hold=args.gate_hold,
                        gate_release=args.gate_release, gate_floor_db=args.gate_floor)
    session = LocalSession(path, settings, switches=switches, vad=vad_path, controls=controls,
                           on_event=lambda m: print(f"rtconv live: {m}", file=sys.stderr, flush=True))
    if args.virtual_mic is not None:
        vmic = VirtualMic(args.virtual_mic, sample_rate=rate, channels=args.channels).open()
        vmic.apply_environment()  # libpulse reads them when PortAudio opens the stream
    stop = {"flag": False}

    def _on_stop(signum, frame):  # Ctrl-C and SIGTERM: leave the loop, stop, finalize
        stop["flag"] = True

    # a flag rather than KeyboardInterrupt, so a signal cannot cut into stop() halfway
    old_term = signal.signal(signal.SIGTERM, _on_stop)
    old_int = signal.signal(signal.SIGINT, _on_stop)
    tty = sys.stderr.isatty() and not args.quiet
    jack_before = jack_clients() if args.connect else set()
    print(f"rtconv live: {path} at {rate} Hz, block {args.block_size}, {args.channels} channel(s); Ctrl-C stops",
          file=sys.stderr, flush=True)
    if vad_path is not None:
        what = (f"gate at p >= {args.gate_threshold:g}, hold {args.gate_hold:g} s, release {args.gate_release:g} s, "
                f"floor {args.gate_floor:g} dB" if args.gate else "speech probability shown, no gate")
        wait = (f"; the output waits {session.processor.gate_delay / rate * 1e3:.1f} ms more for its decisions"
                if args.gate else "")
        print(f"rtconv live: voice activity from {vad_path}; {what}{wait}", file=sys.stderr, flush=True)
    try:
        session.start()
    except BaseException:
        if vmic is not None:
            vmic.close()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        raise
    if vmic is not None:
        print(f"rtconv live: virtual microphone {vmic.name!r} ({vmic.description!r}) is ready: pick it in the "
              f"other program; reading {vmic.microphone or 'the default microphone'}", file=sys.stderr, flush=True)
    if args.connect:
        try:
            for line in connect_outputs(args.connect, jack_before):
                print(f"rtconv live: {line}", file=sys.stderr, flush=True)
        except RtconvError:
            session.stop()
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)
            raise
    if session.recording_paths:
        print("rtconv live: recording to " + ", ".join(map(str, session.recording_paths)), file=sys.stderr, flush=True)
    if args.watch:
        session.watch(path)
    t0 = time.monotonic()
    try:
        while not stop["flag"] and (args.duration is None or time.monotonic() - t0 < args.duration):
            time.sleep(0.05 if args.duration is None else min(0.05, max(0.0, args.duration - (time.monotonic() - t0))))
            if tty:
                print(status_line(session.stats(), session.monitor.meters()), end="", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        session.stop()
        if vmic is not None:
            vmic.close()
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        if tty:
            print(file=sys.stderr)
    stats = session.stats()
    stats["model"] = str(path)
    print(format_stats(stats), file=sys.stderr, flush=True)
    if args.stats_json:
        with open(args.stats_json, "w") as f:
            json.dump(stats, f, indent=2)
    if session.device_hung:  # PortAudio's exit handler would wait on the stuck device forever
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0
