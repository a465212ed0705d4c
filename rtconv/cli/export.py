"""``rtconv export``: a model as an ONNX step model for hosts outside Python."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a model as an ONNX step model (one block, explicit state) for PipeWire and other hosts"

DESCRIPTION = """\
Write MODEL (a checkpoint path or the name of a shipped model) as an ONNX
file that runs one block of exactly --block-size frames:

  input  audio_in   float32 (N, C)      frames-major, like sounddevice
  output audio_out  float32 (N, C_out)
  every other input S is a state; its next value is output S_out (same
  shape); all states start at zero.

Run block by block, feeding each S_out back into S, it gives what
rtconv.Streamer(model, block_size=N) gives (the model's latency included):
before the file is written it is run in onnxruntime (one thread) against
the streamer on full-scale noise and refused if any sample differs by more
than 1e-4.  The model's sample rate, block size, latency, task, name and
rtconv version are in the file's metadata_props; the step model does not
resample, so the host must run it at that rate.

A mono model runs once per channel (--channels C gives a (N, C) input);
a model that mixes channels takes exactly its own count.  Framed models
(the denoiser, hop 96) work at any block size; multiples of the hop (96,
192, 480, 960 ...) make a smaller, slightly faster file.

examples:
  rtconv export denoiser -o denoiser-480.onnx --block-size 480 --pipewire denoiser.conf
  rtconv export models/freqsep.safetensors -o freqsep.onnx -b 1024 --channels 2
  rtconv export my.safetensors -o my.onnx -b 128 --atten-lim 12
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from .common import attenuation_db, frame_count, positive_int

    parser.add_argument("model", metavar="MODEL", help="checkpoint path or shipped model name (e.g. denoiser)")
    parser.add_argument("-o", "--output", metavar="OUT.onnx",
                        help="file to write (default: MODEL's name, block size and .onnx in this folder)")
    parser.add_argument("--block-size", "-b", type=frame_count, required=True, metavar="N",
                        help="frames per block; the host must call the model with exactly this many")
    parser.add_argument("--channels", "-c", type=positive_int, metavar="C",
                        help="channels of the stream (default: the model's input channels)")
    parser.add_argument("--atten-lim", type=attenuation_db, metavar="DB",
                        help="denoiser strength baked into the file: attenuate no band by more than DB dB "
                             "(default: the model's own)")
    parser.add_argument("--pipewire", metavar="FILE.conf",
                        help="also write a PipeWire 1.6+ filter-chain drop-in running the file as a virtual "
                             "microphone (mono models)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--no-check", action="store_true",
                        help="skip running the file against the streamer before writing it (not recommended)")


def run(args) -> int:
    from ..checkpoint import PROBABILITY_TASKS, load, resolve
    from ..errors import ConfigError
    from ..onnx.exporter import TOLERANCE, export, pipewire_config

    model_path = resolve(args.model)
    model = load(model_path)
    if args.atten_lim is not None:
        from ..denoiser import set_attenuation_limit

        set_attenuation_limit(model, args.atten_lim)
    out = Path(args.output) if args.output else Path(f"{model_path.stem}-{args.block_size}.onnx")
    conf = Path(args.pipewire) if args.pipewire else None
    from ..errors import check_output_file

    for flag, p in (("-o", out), ("--pipewire", conf)):
        if p is not None:
            check_output_file(f"{flag} {str(p)!r}", p)  # before the ONNX file is written, not after
            if p.exists() and not args.overwrite:
                raise ConfigError(f"{str(p)!r} exists; pass --overwrite to replace it or -o/--pipewire to choose another name.")
    if conf is not None:
        if conf.suffix != ".conf":
            raise ConfigError(f"the PipeWire config {str(conf)!r} must end in .conf, or PipeWire will not read it.")
        task = (model.metadata or {}).get("task")
        if task in PROBABILITY_TASKS:
            raise ConfigError(
                f"--pipewire makes a virtual microphone that plays the model's output, and {str(model_path)!r} is a "
                f"{task!r} model whose output is a probability, not sound; export it without --pipewire."
            )
        if (args.channels or model.in_channels) != 1 or model.out_channels != 1:
            raise ConfigError(
                f"--pipewire needs a one-channel model and stream (PipeWire's onnx plugin gives each port one "
                f"channel), and {str(model_path)!r} has {model.in_channels} in and {model.out_channels} out"
                f"{'' if not args.channels else f' on {args.channels} channels'}; leave --pipewire out."
            )
        if not model.sample_rate:
            raise ConfigError(
                f"--pipewire needs the model's sample rate, and {str(model_path)!r} states none; save it with "
                "rtconv.save(..., sample_rate=...) first."
            )
    result = export(model, out, args.block_size, args.channels, check=not args.no_check)
    meta = result.metadata
    rate = meta.get("sample_rate")
    print(f"wrote {out}: {meta['name']!r} ({meta['task']}), blocks of {result.block_size} frames, "
          f"{result.channels} -> {result.out_channels} channels, "
          f"{'at ' + rate + ' Hz' if rate else 'any sample rate'}, latency {meta['latency_samples']} samples")
    print(f"  inputs   audio_in {result.block_size}x{result.channels}"
          + "".join(f", {k} {'x'.join(map(str, s))}" for k, s in result.states))
    print(f"  outputs  audio_out {result.block_size}x{result.out_channels}"
          + "".join(f", {k}_out" for k, _ in result.states))
    if result.max_error is not None:
        print(f"  checked  {result.blocks_checked} blocks in onnxruntime against rtconv.Streamer: "
              f"largest difference {result.max_error:.2g} (allowed {TOLERANCE:g})")
    else:
        print("  not checked against the streamer (--no-check)")
    if conf is not None:
        text = pipewire_config(result)
        tmp = conf.with_name(f".{conf.name}.part")
        try:
            tmp.write_text(text)
            tmp.replace(conf)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot write the PipeWire config {str(conf)!r}: {e.strerror or e}; {str(out)!r} "
                              "was written, so run again with --overwrite and a writable --pipewire path.") from None
        print(f"wrote {conf}: PipeWire filter-chain drop-in (a virtual microphone); "
              f"copy it to ~/.config/pipewire/pipewire.conf.d/ and restart PipeWire")
    return 0
