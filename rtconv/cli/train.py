"""``rtconv train``: train a filter offline and write a deployable checkpoint."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..train.choices import (DEFAULTS, DIST_BACKENDS, KEEP, OPTIMIZERS, SCHEDULES, TASK_LOSSES, TASK_OPTIONS, TASKS,
                             WAVEFORMS, default_arch)
from ..train.choices import LOSS_NAMES as LOSSES
from ..train.choices import LOSS_TERMS
from ..vad import FRAMES_PER_SECOND, LABEL_DB
from .common import (clip_seconds, epoch_count, key_value, loss_text, name_weights, nonnegative_number, number_list,
                     number_range, positive_int, positive_number, sample_rate_hz, seed)

HELP = "train a filter or classifier (sines, freqsep, denoise, classify, vad) and write a checkpoint"

# the help text below is formatted from the defaults the tasks use, so the two cannot drift apart
_COUNT = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
_FRAME_MS = 1000 // FRAMES_PER_SECOND
_SINES, _CROSSOVER, _DENOISE = TASK_OPTIONS["sines"], TASK_OPTIONS["freqsep/audio"], TASK_OPTIONS["denoise"]
_CLASSIC_LENGTH = TASK_OPTIONS["freqsep"]["length"]
#: the mixer's default channel band shares (``rtconv.data.mix.MixSettings.band_weights``), written out so that
#: ``rtconv --help`` does not import scipy.signal; a test holds the two equal
BANDS_HELP = "full=0.55,telephone=0.07,8k=0.08,11k=0.07,16k=0.11,22k=0.07,32k=0.05"
#: and its default noise source shares (``MixSettings.noise_weights``), held equal by the same test
NOISE_SOURCES_HELP = "recorded=0.45,music=0.1,babble=0.12,generated=0.33"
#: and its default speech kind shares (``MixSettings.speech_kind_weights``), held equal by a test
SPEECH_KINDS_HELP = "real=0.5,festival=0.2,neural=0.15,formant=0.15"


def _bands(text: str) -> dict[str, float]:
    """argparse type of ``--bands``: weights over the mixer's band limits (imported only when given)."""
    from ..data.augment import BAND_LIMITS

    return name_weights(tuple(BAND_LIMITS))(text)


def _noise_sources(text: str) -> dict[str, float]:
    """argparse type of ``--noise-sources``: weights over the mixer's noise sources (imported only when given)."""
    from ..data.mix import NOISE_SOURCES

    return name_weights(NOISE_SOURCES)(text)


def _speech_kinds(text: str) -> dict[str, float]:
    """argparse type of ``--speech-kinds``: weights over the corpus's speech kinds (imported only when given)."""
    from ..data.corpus import SPEECH_KINDS

    return name_weights(SPEECH_KINDS)(text)


def _fir_taps(task: str) -> int:
    return default_arch(task)[1]["taps"]


def _pair(values, sep: str = ",") -> str:
    return f"{values[0]:g}{sep}{values[1]:g}"


DESCRIPTION = f"""\
Train a causal convolutional filter offline and save it as a checkpoint that
`rtconv process`, `rtconv live` and the GUI load.

Tasks
  sines     noisy sine ({_pair(_SINES["cycles"], "-")} cycles per 256 samples, noise std \
{_SINES["noise_std"][0]}-{_SINES["noise_std"][1]}) -> clean sine;
            default model: a {_fir_taps("sines")}-tap FIR
  freqsep   --variant classic: low tone + high tone + noise over {_CLASSIC_LENGTH} samples -> high tone
            ({_fir_taps("freqsep")}-tap FIR); --variant audio: a learned crossover at --sample-rate with two
            outputs (low, high), band edges from --low-band / --high-band
  denoise   speech in noise -> speech.  Clean speech is synthesized with espeak-ng
            (cached in ~/.cache/rtconv/speech or --cache-dir) or read from --speech-dir;
            noise is generated (white, pink, brown, hum, babble, bursts, clicks; the
            'fan' family and other voices are held out for the test) or read from
            --noise-dir.  Random SNR (--snr-db), gain and crops.
  classify  --variant waveforms: a {", ".join(WAVEFORMS[:-1])} or {WAVEFORMS[-1]} wave (random
            frequency, phase, amplitude) in white noise -> {_COUNT[len(WAVEFORMS)]} probability tracks;
            default model: a causal CNN ({default_arch("classify")[0]}); --arch linear_classifier is
            the linear baseline; loss {TASK_LOSSES["classify"]} (cross-entropy)
  vad       speech / no speech on the realistic corpus (`rtconv data build` first):
            mixtures -> the probability of speech per sample, labels from the clean
            speech ({_FRAME_MS} ms frames within --label-db of its active level); default model:
            {default_arch("vad")[0]} (10 ms frames, 9.98 ms latency at 48 kHz); loss {TASK_LOSSES["vad"]}

The data are split into train / validation / test with disjoint random
streams (and, for denoise, disjoint voices, sentences and noise parameters).
The best validation weights are written to --out as soon as they appear; at
the end the test metrics (loss, MSE, SNR and SI-SDR improvement per input-SNR
bucket) and the exact command line are stored in the checkpoint.  Write
your own models outside models/: the files there are the shipped ones, and
an --out or --report into that folder replaces them.

Examples
  rtconv train sines --out sines.safetensors --report sines.png
  rtconv train freqsep --variant audio --out crossover.safetensors
  rtconv train classify --variant waveforms --out waves.safetensors --report waves.png
  rtconv train vad --out my-vad.safetensors --report my-vad.png
  rtconv train denoise --recipe lab --out my-lab-denoiser.safetensors --report my-lab-denoiser.png
  rtconv train denoise --arch dilated_cnn --arch-arg channels=16 --loss l1+stft \\
      --optimizer adam --lr 3e-3 --schedule cosine --speech-dir ~/corpus/clean
"""

#: The lab recipe: every flag it implies (explicit flags still win).
RECIPES = {
    "lab": {
        "task": "denoise",
        "arch": "mimo_cnn",
        "taps": [40, 40],
        "features": [1, 5, 1],
        "activation": "tanh",
        # Measured: with output biases, L1's sign gradient moves each bias by up to lr = 0.5 per
        # step and SGD diverges within the first epoch (loss 0.03 -> 40); without them it trains.
        "bias": False,
        "loss": "l1",
        "optimizer": "sgd",
        "lr": 0.5,
        "batch_size": 32,
        "epochs": 20,
        "sample_rate": 32000,
        "seconds": 1.0,
        "train_examples": 512,
    },
}


def _task_losses() -> str:
    """'ce for classify and vad': the tasks whose default loss differs, for --help."""
    by_loss: dict[str, list[str]] = {}
    for task, loss in TASK_LOSSES.items():
        by_loss.setdefault(loss, []).append(task)
    return "; ".join(f"{loss} for {' and '.join(tasks)}" for loss, tasks in by_loss.items())


def _recipe_text(recipe: dict) -> str:
    """A recipe in words, for --help: 'denoise, MimoCNN taps 40,40 features 1,5,1 tanh (no biases), ...'."""
    def numbers(v):
        return ",".join(str(x) for x in v)

    arch = {"mimo_cnn": "MimoCNN"}.get(recipe["arch"], recipe["arch"])
    return (f"{recipe['task']}, {arch} taps {numbers(recipe['taps'])} features {numbers(recipe['features'])} "
            f"{recipe['activation']}{'' if recipe['bias'] else ' (no biases)'}, {recipe['loss'].upper()}, "
            f"{recipe['optimizer'].upper()} lr {recipe['lr']:g}, batch {recipe['batch_size']}, "
            f"{recipe['epochs']} epochs, {recipe['sample_rate'] // 1000:g} kHz, {recipe['seconds']:g} s clips, "
            f"{recipe['train_examples']} training examples")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", nargs="?", choices=TASKS, help="what to learn (default: the recipe's task)")
    parser.add_argument("--recipe", choices=sorted(RECIPES),
                        help=f"a named set of choices: 'lab' = {_recipe_text(RECIPES['lab'])}")
    g = parser.add_argument_group("output")
    g.add_argument("--out", "-o", metavar="PATH", help="checkpoint to write (.safetensors)")
    g.add_argument("--report", metavar="PNG", help="write a PNG report (loss curves, kernels, responses, spectra)")
    g.add_argument("--metrics-json", metavar="PATH", help="also write the final metrics as JSON")
    g.add_argument("--name", help="model name stored in the checkpoint")
    g.add_argument("--description", help="one-paragraph description stored in the checkpoint")
    g.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar or log lines; the closing line, which says where the model was saved, "
                        "and the note that nothing will be saved without --out still print")

    g = parser.add_argument_group("model")
    g.add_argument("--arch", metavar="NAME",
                   help="architecture (fir, mimo_cnn, dilated_cnn, or any registered one; default: the task's)")
    g.add_argument("--taps", type=number_list, metavar="N[,N...]", help="taps (per layer for mimo_cnn)")
    g.add_argument("--features", type=number_list, metavar="F0,F1,...", help="mimo_cnn channel counts")
    g.add_argument("--activation", help="nonlinearity: tanh, relu, sigmoid, leaky_relu, identity")
    g.add_argument("--padding", choices=("causal", "same"),
                   help="causal (default, no latency) or same (centred: latency = half the span)")
    g.add_argument("--arch-arg", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="any other constructor argument, VALUE as JSON (repeatable)")
    g.add_argument("--resume", metavar="PATH",
                   help="continue from this checkpoint's weights and history (a path or a shipped model's name: "
                        "--resume denoiser fine-tunes the shipped denoiser); its sample rate and loss are this "
                        "run's unless --sample-rate or --loss says otherwise; with --arch-arg, into a grown "
                        "architecture (e.g. --arch-arg gru=64)")

    g = parser.add_argument_group("optimisation")
    g.add_argument("--loss", type=loss_text, metavar="LOSS",
                   help=f"one of {', '.join(LOSSES)}, or a weighted sum of the terms {', '.join(LOSS_TERMS)} "
                        f"such as 'si_sdr + 10*sc + 5*cmrs' (default: {DEFAULTS['loss']}; {_task_losses()})")
    g.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default: {DEFAULTS['optimizer']}")
    g.add_argument("--lr", type=positive_number, help=f"learning rate (default: {DEFAULTS['lr']})")
    g.add_argument("--momentum", type=nonnegative_number, default=DEFAULTS["momentum"], help="SGD momentum (default: %(default)s)")
    g.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"], help="(default: %(default)s)")
    g.add_argument("--batch-size", type=positive_int, help=f"default: {DEFAULTS['batch_size']}")
    g.add_argument("--epochs", type=epoch_count, help=f"default: {DEFAULTS['epochs']}; 0 with --resume only "
                   "evaluates (and with --calibrate-gain calibrates) the checkpoint")
    g.add_argument("--schedule", choices=SCHEDULES, default=DEFAULTS["schedule"], help="learning-rate schedule (default: %(default)s)")
    g.add_argument("--clip-grad", type=positive_number, metavar="NORM", help="clip the gradient norm")
    g.add_argument("--patience", type=positive_int, metavar="EPOCHS", help="early stop after EPOCHS without improvement")
    g.add_argument("--keep", choices=KEEP, default="best",
                   help="which weights --out holds: the epoch with the lowest validation loss (with --resume the "
                        "resumed weights compete, so a run that beats none of them returns them unchanged) or the "
                        "last epoch's, for a stage judged by a benchmark rather than the loss (default: %(default)s)")
    g.add_argument("--calibrate-gain", action="store_true",
                   help="denoisers: after training, fold one least-squares output gain measured on the "
                        "validation split into the decoder (SI-SDR leaves the level free)")
    g.add_argument("--seed", type=seed, default=DEFAULTS["seed"],
                   help="seed for data, init and shuffling (default: %(default)s)")
    g.add_argument("--device", default=DEFAULTS["device"],
                   help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    g.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--time-budget", type=positive_number, metavar="MIN",
                   help="minutes the whole run may take: a few timed steps (counted in it) size --epochs down "
                        "to what fits (the schedule then ends with the run), and if the steps then run slower (a "
                        "busier machine), the epoch under way stops in time to be validated, tested and saved "
                        "by the budget's end")
    g.add_argument("--micro-batch", type=positive_int, metavar="N",
                   help="compute each step's batch in pieces of N examples whose gradients add up to the "
                        "step (examples are averaged alike; 'sc' becomes the pieces' mean): on a CPU a batch "
                        "of 64 four-second clips runs about twice as fast per clip in pieces of 16")
    g.add_argument("--train-only", metavar="WORD[,WORD...]",
                   help="train only the parameters whose names contain one of these words (e.g. 'presence': "
                        "a presence head grown with --arch-arg presence=16 on a frozen denoiser)")
    g.add_argument("--train-warmup", action="store_true",
                   help="train on each example's first receptive-field samples too (skipped by default, as a "
                        "running stream has history): every file starts from silence, and a model with a "
                        "recurrent part must learn to be right from its first frame")
    g.add_argument("--fresh-examples", action="store_true",
                   help="mix a new set of --train-examples for every epoch instead of repeating one (epoch E "
                        "trains on the examples E*N ... E*N+N-1 of the seed's stream): more data than memory "
                        "holds, for the mixing time each epoch; an interrupted run still continues exactly")
    g.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="processes that mix the examples before training (the examples are the same for "
                        "any N; default: %(default)s)")

    g = parser.add_argument_group(
        "several processes (under torchrun)",
        "torchrun --nproc_per_node N [--nnodes M --rdzv-endpoint HOST:PORT] $(which rtconv) train ... "
        "trains with DistributedDataParallel; --batch-size is the effective batch of all ranks, split "
        "evenly among them; only rank 0 writes and reports.")
    g.add_argument("--dist-backend", choices=DIST_BACKENDS, default=DEFAULTS["dist_backend"],
                   help="collective backend: auto = nccl on CUDA, gloo on CPU (default: %(default)s)")
    g.add_argument("--dist-timeout", type=positive_number, default=DEFAULTS["dist_timeout"], metavar="SECONDS",
                   help="how long ranks wait for a silent one (a lost machine) before the job stops "
                        "(default: %(default)g)")

    g = parser.add_argument_group("data")
    g.add_argument("--train-examples", type=positive_int, metavar="N")
    g.add_argument("--val-examples", type=positive_int, metavar="N")
    g.add_argument("--test-examples", type=positive_int, metavar="N")
    g.add_argument("--variant", choices=("classic", "audio", "waveforms"),
                   help="freqsep: 256-sample exercise (classic) or audio crossover; classify: waveforms")
    g.add_argument("--sample-rate", type=sample_rate_hz, metavar="HZ",
                   help=f"freqsep audio ({_CROSSOVER['sample_rate']}) / denoise ({_DENOISE['sample_rate']})")
    g.add_argument("--seconds", type=clip_seconds, help="example length in seconds (audio tasks)")
    g.add_argument("--low-band", type=number_range, metavar="LO,HI",
                   help=f"freqsep audio: low tones in Hz ({_pair(_CROSSOVER['low_band'])})")
    g.add_argument("--high-band", type=number_range, metavar="LO,HI",
                   help=f"freqsep audio: high tones in Hz "
                        f"({_CROSSOVER['high_band_low']:g},{_CROSSOVER['high_band_top']:g}*rate)")
    g.add_argument("--snr-db", type=number_range, metavar="LO,HI",
                   help=f"denoise: input SNR range (write --snr-db={_pair(_DENOISE['snr_db'])} when LO is negative)")
    g.add_argument("--gain-db", type=number_range, metavar="LO,HI",
                   help=f"denoise: random gain range (--gain-db={_pair(_DENOISE['gain_db'])})")
    g.add_argument("--utterances", type=positive_int, metavar="N",
                   help=f"denoise: espeak utterances for training ({_DENOISE['utterances']})")
    g.add_argument("--speech-dir", metavar="DIR", help="denoise: folder of clean speech (instead of espeak-ng)")
    g.add_argument("--noise-dir", metavar="DIR", help="denoise: folder of noise recordings (added to the draw)")
    g.add_argument("--noise-families", metavar="A,B,...", help="denoise: generated noise families to train on")
    g.add_argument("--cache-dir", metavar="DIR", help="speech cache (default: ~/.cache/rtconv)")
    g.add_argument("--corpus", choices=("espeak", "realistic"),
                   help="denoise: espeak-ng speech + generated noise (default), or the realistic corpus "
                        "built by `rtconv data build`")
    g.add_argument("--level-db", type=number_range, metavar="LO,HI",
                   help="denoise, realistic corpus: speech level range around -26 dBFS (--level-db=-45,10)")
    g.add_argument("--kinds", type=name_weights(("mix", "speech", "noise")), metavar="mix=W,speech=W,noise=W",
                   help="denoise (realistic corpus) and vad: the shares of speech in noise, clean speech (nothing "
                        "to remove) and noise alone (nothing to keep) among the examples (mix=0.84,speech=0.08,"
                        "noise=0.08); names left out get weight 0")
    g.add_argument("--bands", type=_bands, metavar="full=W,telephone=W,...",
                   help=f"denoise, realistic corpus: the shares of the channel's band limits among the examples "
                        f"(telephone: 300-3400 Hz; hp150, hp300: a 150 or 300 Hz low cut alone; "
                        f"8k..32k: the content of a file at that rate) ({BANDS_HELP}); names left out get weight 0")
    g.add_argument("--noise-sources", type=_noise_sources, metavar="recorded=W,music=W,...",
                   help="denoise (realistic corpus) and vad: the shares of the noise sources among the noisy "
                        "examples: "
                        "recorded, music, babble, generated, and tones (pitched sounds that are not a voice: "
                        f"plucks, bells, beeps, held notes; training only) ({NOISE_SOURCES_HELP}); names left "
                        "out get weight 0")
    g.add_argument("--speech-kinds", type=_speech_kinds, metavar="real=W,festival=W,...",
                   help="denoise, realistic corpus: the shares of the speech kinds among the examples: real "
                        "(recordings of people), festival (voices built from a speaker's diphones or HTS "
                        f"models), neural (neural TTS voices), formant (espeak-ng) ({SPEECH_KINDS_HELP}); a "
                        "kind draws its speakers alike; names left out get weight 0")
    g.add_argument("--val-split", choices=("val", "dev"), default=None,
                   help="denoise, realistic corpus: where the validation examples (which choose the kept epoch) "
                        "come from: val, one item in ten of the training sources (the training speakers; the "
                        "default), or dev, voices and noise recordings of packages no model trains on (`rtconv data "
                        "build --split dev`), which shows a model fitting its training speakers or noise files")
    g.add_argument("--speech-subsonic", action="store_const", const=True, default=None,
                   help="realistic corpus (denoise, vad): keep what the speech recordings hold below 20 Hz "
                        "(DC offset, drift, rumble) in the examples, as every run before 2026-12-02 did; by "
                        "default it is removed, so targets carry none")
    g.add_argument("--label-db", type=positive_number, metavar="DB",
                   help=f"vad: a {_FRAME_MS} ms frame is speech when its clean energy is within DB of the clip's "
                        f"active level ({LABEL_DB:g})")
    g.add_argument("--mix-rate", type=positive_int, metavar="HZ",
                   help="vad: mix the corpus at this rate and resample the examples to --sample-rate "
                        "(16000 holds a third of the audio in memory; a VAD hears up to 8 kHz)")
    g.add_argument("--noise-seconds", type=positive_number, metavar="SECONDS",
                   help="vad: the longest stretch of each noise recording held in memory "
                        f"({TASK_OPTIONS['vad']['noise_seconds']:g})")


def _arch_config(args, arch: str | None, recipe: dict) -> dict | None:
    conf: dict = {}
    for key in ("taps", "features", "activation", "bias"):
        v = getattr(args, key, None)
        if v is None:
            v = recipe.get(key)
        if v is not None:
            conf[key] = v
    if args.padding:
        conf["padding"] = args.padding
    conf.update(dict(args.arch_arg))
    if arch == "mimo_cnn" and isinstance(conf.get("taps"), int):
        conf["taps"] = [conf["taps"]]
    if arch == "fir":
        conf.setdefault("learnable", True)
    return conf or None


#: How a task key of rtconv.train.choices.TASK_READS is asked for on the command line, where not by its name.
_TASK_NAMES = {"freqsep/audio": "freqsep --variant audio", "denoise/realistic": "denoise --corpus realistic"}


def _realistic_only(task: str, opts: dict) -> None:
    """Refuse, in one sentence each, the realistic corpus's options given to a task that would not read them: which
    tasks read each comes from ``TASK_READS``."""
    from ..errors import ConfigError
    from ..train.choices import TASK_READS, task_key

    reads = TASK_READS.get(task_key(task, opts.get("variant"), opts.get("corpus")), frozenset())
    shares = "sets the shares of the realistic corpus's examples"
    said = {"kinds": shares, "bands": shares, "noise_sources": shares, "speech_kinds": shares,
            "val_split": "chooses the realistic corpus's validation examples",
            "speech_subsonic": "is about the realistic corpus's speech"}
    for key, what in said.items():
        if key in opts and key not in reads:
            takers = " or ".join(f"'{_TASK_NAMES.get(k, k)}'" for k, r in TASK_READS.items() if key in r)
            flag = f"--{key.replace('_', '-')}" + (f" {opts[key]}" if key == "val_split" else "")
            raise ConfigError(f"{flag} {what}; train {takers} with it, or leave it out.")


def _refuse_unread(task: str, opts: dict) -> None:
    """An option the task would not read, refused in one sentence: it trained without it before."""
    from ..errors import ConfigError
    from ..train.choices import TASK_READS, task_key

    key = task_key(task, opts.get("variant"), opts.get("corpus"))
    reads = TASK_READS.get(key)
    if reads is None:
        return
    unread = [k for k in opts if k not in reads and k not in ("train_examples", "val_examples", "test_examples")]
    if unread:
        what = _TASK_NAMES.get(key, key)
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in unread)
        takes = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(reads - {"cycles", "length"})  # no flags: API only
                          ) or "only --seed and the example counts"
        raise ConfigError(f"{flags} {'does' if len(unread) == 1 else 'do'} not apply to task '{what}', which would "
                          f"train without {'it' if len(unread) == 1 else 'them'} (it takes {takes}); leave "
                          f"{'it' if len(unread) == 1 else 'them'} out.")


def _follow_resumed(args, task: str) -> dict:
    """What a run that resumes a checkpoint takes from it when not told otherwise: its sample rate (for a task
    at an audio rate) and the loss it was trained with, so that ``--resume denoiser`` fine-tunes the shipped
    denoiser at 48 kHz on its own loss.  ``args.resume`` becomes the file a shipped name means; the values taken
    are said once and written into the recorded command (``args.followed_flags``), so it reruns alike."""
    from .. import checkpoint
    from ..errors import RtconvError
    from ..train.choices import TASK_READS, task_key
    from ..train.distributed import env_rank

    path = checkpoint.resolve(args.resume)
    args.resume = str(path)
    try:
        meta = checkpoint.read_metadata(path)
    except (RtconvError, OSError):  # the trainer refuses it in its own words
        return {}
    followed, flags = {}, []
    rate = meta.get("sample_rate")
    reads = TASK_READS.get(task_key(task, args.variant, args.corpus), frozenset())
    made_for = meta.get("task")
    if rate and args.sample_rate is None and "sample_rate" in reads and made_for in (task, None, "unknown", "filter"):
        followed["sample_rate"] = int(rate)
        flags += ["--sample-rate", str(int(rate))]
    loss = ((meta.get("provenance") or {}).get("config") or {}).get("loss")
    if loss and args.loss is None and args.recipe is None and made_for == task:
        followed["loss"] = loss
        flags += ["--loss", loss]
    if flags and not getattr(args, "quiet", False) and env_rank() == 0:
        print(f"rtconv train: note: as the resumed model {path.name} was trained: {shlex.join(flags)} "
              "(pass them to train otherwise)", file=sys.stderr)
    args.followed_flags = flags
    return followed


def build_config(args):
    """A :class:`~rtconv.train.config.TrainConfig` from parsed arguments."""
    from ..errors import ConfigError
    from ..train.trainer import TrainConfig

    recipe = RECIPES.get(args.recipe or "", {})
    task = args.task or recipe.get("task")
    if task is None:
        raise ConfigError("no task given; name one (sines, freqsep, denoise) or pass --recipe lab.")
    if recipe and args.task and args.task != recipe["task"]:
        raise ConfigError(f"recipe {args.recipe!r} trains task {recipe['task']!r}, not {args.task!r}.")

    followed = _follow_resumed(args, task) if args.resume else {}

    def pick(name):
        v = getattr(args, name)
        if v is None and name in followed:
            return followed[name]
        if v is None and name == "loss" and task in TASK_LOSSES:
            return TASK_LOSSES[task]
        return v if v is not None else recipe.get(name, DEFAULTS.get(name))

    arch = args.arch or recipe.get("arch")
    conf = _arch_config(args, arch or None, recipe)
    if conf and not arch and not args.resume:  # with --resume, options grow the resumed architecture
        arch = default_arch(task, args.variant, args.corpus)[0]
        conf = _arch_config(args, arch, recipe)
    opts = {}
    for key in ("train_examples", "val_examples", "test_examples", "variant", "seconds",
                "low_band", "high_band", "snr_db", "gain_db", "utterances", "speech_dir",
                "noise_dir", "cache_dir", "corpus", "level_db", "kinds", "bands", "noise_sources", "speech_kinds",
                "label_db",
                "mix_rate", "noise_seconds", "speech_subsonic", "val_split"):
        v = getattr(args, key)
        if v is None:
            v = recipe.get(key)
        if v is not None:
            opts[key] = v
    if args.sample_rate or recipe.get("sample_rate"):
        opts["sample_rate"] = args.sample_rate or recipe["sample_rate"]
    elif "sample_rate" in followed:
        opts["sample_rate"] = followed["sample_rate"]
    _realistic_only(task, opts)
    if args.noise_families:
        opts["noise_families"] = [f.strip() for f in args.noise_families.split(",") if f.strip()]
    _refuse_unread(task, opts)
    return TrainConfig(
        task=task, task_options=opts, arch=arch, arch_config=conf, loss=pick("loss"),
        optimizer=pick("optimizer"), lr=pick("lr"), momentum=args.momentum,
        weight_decay=args.weight_decay, batch_size=pick("batch_size"), epochs=pick("epochs"),
        schedule=args.schedule, clip_grad=args.clip_grad, patience=args.patience, seed=args.seed,
        calibrate_gain=args.calibrate_gain, dist_backend=args.dist_backend, dist_timeout=args.dist_timeout,
        device=args.device, out=args.out, report=args.report, resume=args.resume, name=args.name,
        description=args.description, command=_command_line(args), progress=not args.quiet,
        workers=args.workers, micro_batch=args.micro_batch, time_budget=args.time_budget,
        train_only=_words(args.train_only), train_warmup=args.train_warmup,
        fresh_examples=args.fresh_examples, keep=args.keep,
    )


def _words(text: str | None) -> list[str] | None:
    """``--train-only``'s comma-separated words, or None when it is not given."""
    if text is None:
        return None
    words = [w.strip() for w in text.split(",") if w.strip()]
    if not words:
        from ..errors import ConfigError

        raise ConfigError(f"--train-only needs words found in parameter names, got {text!r}; e.g. --train-only presence.")
    return words


def _command_line(args) -> str:
    """The command as typed when run from a shell, else rebuilt from the parsed flags."""
    argv = sys.argv
    followed = getattr(args, "followed_flags", [])  # what --resume's model set: recorded, so the command reruns alike
    if len(argv) > 1 and argv[1] == "train" and Path(argv[0]).name in ("rtconv", "__main__.py"):
        return shlex.join(["rtconv", "train", *argv[2:], *followed])
    words = ["rtconv", "train"] + ([args.task] if args.task else [])
    for key, value in sorted(vars(args).items()):
        if key in ("task", "command", "func", "followed_flags") or key.startswith("_") or value in (None, False, []):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif key == "arch_arg":
            for k, v in value:
                words += [flag, f"{k}={json.dumps(v)}"]
        else:
            if isinstance(value, dict):
                text = ",".join(f"{k}={v:g}" for k, v in value.items())
            elif isinstance(value, list):
                text = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
            else:
                text = str(value)
            words.append(f"{flag}={text}")  # '=' keeps a negative LO from reading as a flag
    return shlex.join(words + followed)


def run(args) -> int:
    import os

    from ..errors import RtconvError
    from ..train.distributed import launched

    if not launched() or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return _run(args)
    # Under torchrun a rank leaves with os._exit once its work and its output are done: the C++
    # teardown at interpreter exit can abort ("terminate called without an active exception",
    # SIGABRT) while gloo's threads wind down, which made a finished job fail about one time in
    # five on a loaded 2-core machine even after the process group was left together.
    try:
        code = _run(args)
    except RtconvError as e:
        print(f"rtconv train: error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("rtconv train: interrupted", file=sys.stderr)
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(args) -> int:
    import torch

    from ..train.distributed import env_rank
    from ..train.trainer import train

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = build_config(args)
    if cfg.out is not None:  # refuse out.wav before an hour of training, not after
        from ..checkpoint import check_model_path

        check_model_path(cfg.out)
    if args.metrics_json:
        from ..errors import check_output_file

        check_output_file(f"--metrics-json {args.metrics_json!r}", args.metrics_json,
                          " (checked now, so that a finished run is not lost)")
    unsaved = "rtconv train: note: no --out given, the trained model will not be saved"
    if cfg.out is None and not args.quiet and env_rank() == 0:  # before: time to stop and add --out
        print(unsaved, file=sys.stderr)
    result = train(cfg)
    if result.rank != 0:  # under torchrun rank 0 reports for the job
        return 0
    if cfg.out is None and args.quiet:  # quiet hides progress, not a result thrown away; said once it is done,
        print(unsaved, file=sys.stderr)  # so that a refused setting is still the one line of an error
    m = result.metrics
    kept = f", kept the last, {m['kept_epoch']}" if cfg.keep == "last" else ""
    where = f"saved to {cfg.out}" if cfg.out else "not saved (no --out)"
    print(f"train loss {m['train_loss']:.6g}  test loss {m['test_loss']:.6g}  "
          f"(best epoch {m['best_epoch']} of {m['epochs_run']}{kept}, {m['train_seconds']:.1f} s); {where}")
    if args.metrics_json:
        try:
            with open(args.metrics_json, "w") as f:
                json.dump(m, f, indent=2)
        except OSError as e:
            from ..errors import ConfigError

            raise ConfigError(f"cannot write --metrics-json {args.metrics_json!r}: {e.strerror or e}; the model "
                              f"{'is in ' + repr(cfg.out) if cfg.out else 'was not saved (no --out)'}.") from None
    return 0
