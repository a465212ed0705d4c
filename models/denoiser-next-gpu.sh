#!/usr/bin/env bash
# The next training step of the default denoiser, for a CUDA machine. Run twice: short (thirty-seventh
# session: 3,000 clips, 34 epochs in 3.2 minutes) and in full (thirty-eighth: 12,000 clips, 20 epochs in 8.5
# minutes). Both were level with v9 on the dev voices in SI-SDRi and behind it in STOI (-0.0034, significant):
# not shipped (models/denoiser-history.md). Since then the loss has a `stoi` term (40*stoi): on one CPU
# epoch from v9, the same clips and seed with and without it, the dev voices scored PESQ +0.019 [+0.011,
# +0.029] and STOI +0.0070 [+0.0055, +0.0086] with it, SI-SDRi level (20*stoi: about two thirds of that;
# thirty-eighth session). That is the next call: the same recipe without the term gave the same trade twice.
#
# Why a GPU: every CPU stage since the eighth session (models/denoiser-history.md) moved the shipped
# model along one frontier (more noise removed for less speech kept, or the reverse); the GPU epochs
# of the eighth session were the only runs that moved it (18 epochs of 16,000 clips: validation loss
# still falling). This step continues v9 with v9's loss (and the stoi term) on more of what its verdict asks for: clips
# with a 300/150 Hz low cut (the telephone gap lies in the band's low cut) and noise-only clips, at
# SNRs up to 30 dB rather than 20 (thirty-first session, two CPU epochs on validation: the 20 dB bucket
# +0.46 -> +1.08 dB, clean speech 26.5 -> 28.1 dB, the telephone gap 0.82 -> 0.69 dB, STOI +0.004,
# for 0.8 dB less removed from noise alone; held out they lost, see below).
#
# The kept epoch is chosen on the dev voices (--val-split dev: Tux Paint's readers, whom no model trains
# on), not on the validation split's training speakers: in the thirty-second session five CPU stages from
# v9 were level or ahead of it on validation and all behind it held out (SI-SDRi -0.08..-0.18 dB, PESQ
# worse in four), and the dev set said so too (PESQ worse in the same four, SI-SDRi lower in four). It was one
# package of real voices with in-domain noise, though: in the thirty-ninth session the full call's a with a CPU stoi stage was
# ahead of v9 on dev (SI-SDRi +0.09, PESQ +0.015, STOI +0.0049) and behind it held out (-0.21, -0.013,
# +0.0019). A dev win is a reason to score held out, not a forecast. Its noise was the validation noise,
# files of the training packages; since the fortieth session the dev split has noise of its own packages
# (and Trigger Rally's co-drivers as a second voice package): a pack made before 2026-12-04 has no dev noise
# and `--val-split dev` refuses it, so make the pack again. The dev grid also takes the held-out grid's mix of
# bands now (80 % 11 kHz or narrower). With both, a40 - v9 on dev (2 per cell) is SI-SDRi -0.02, PESQ +0.011,
# STOI +0.0023 (before: +0.06, +0.017, +0.0045; held out: -0.21, -0.013, +0.0019): half way. Read dev's per-SNR
# rows and band part, not only its mean.
#
# On the GPU machine (no network; torch there; this repository as the working directory):
#   # beforehand, on a machine with the corpus and a network (runs/ is git-ignored):
#   rtconv data build --workers 2     # if the corpus is not built yet: the neural voices on two cores
#   rtconv data pack runs/pack        # train + val + dev (5 % of its voices, its noise) as Opus, ~52 MB; never test
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d runs/whl soundfile cffi pycparser soxr pyroomacoustics   # what a bare torch image lacks (3 MB)
#   # there, with runs/pack and runs/whl copied along:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site runs/whl/*.whl
#   PYTHONPATH=/tmp/site:$PWD bash models/denoiser-next-gpu.sh runs/pack OUTDIR MINUTES
# --time-budget sizes the epochs to MINUTES (mixing included); the schedule ends with the run. Then, on
# the full corpus (not the pack): calibrate the output gain (recipe step 4's command with --epochs 0
# --calibrate-gain), score it on the dev split beside v9 (`rtconv bench denoise --split dev
# --model ... --baseline models/denoiser.safetensors`: 2 items per cell, ~6 minutes) and only then on the
# held-out set.
#
# DEVICE, WORKERS, EXAMPLES, LR, SEED, RESUME and LOSS override the defaults (cuda, 15, 12000, 5e-5, 311,
# models/denoiser.safetensors, v9's loss + 40*stoi; a relative RESUME is read from this repository's root, where the
# script runs).
# A CPU dry run of the script is `DEVICE=cpu WORKERS=2 EXAMPLES=64 bash models/denoiser-next-gpu.sh runs/pack /tmp/dry 2`.
#
# What the thirty-seventh session's call taught (models/denoiser-history.md has the numbers):
# - ONE run per call. Two at once (the thirty-fifth session's plan) each fed about 57 clips/s: their data
#   workers and the GRU's kernel launches share 16 cores. Mixing 24,000 + 16,000 clips took the whole
#   8 minutes and neither run finished its first epoch inside the 600 s call; nothing came back. (The
#   trainer now also ends an epoch at the budget's end and saves it: --time-budget is a deadline.)
# - One run alone mixed 3,000 clips in about 45 s (about 70 clips/s with 15 workers) and then trained at
#   about 600 clips/s: 5.4 s an epoch of 3,000 with the validation on 256 dev clips. EXAMPLES=12000 is
#   about 3 minutes of mixing and 15 epochs in an 8.5-minute budget.
# - The pack's 5,230 files are over the 64 MiB a call may carry (as it counts them); one gzip tarball
#   (49 MB) is not: `tar czf runs/pack.tgz -C runs pack` before the call.
# - The machine started in about 30 s; a 600 s call leaves about 4 minutes of the 900, enough for one more
#   short call on the warm machine (the pack and /tmp/site are still there: skip the tar and the pip).
# What the thirty-eighth session's call taught:
# - 12,000 clips mixed in about 190 s; the epochs took 14-15 s where the sizing said 10.8 s, so 20 of a planned
#   28 ran and the deadline cut the 21st: the checkpoint came back. The dev validation loss fell 12 % while
#   the dev bench's PESQ and STOI did not move: the loss rewards what STOI does not.
# - To continue a run, set RESUME rather than editing a copy of this script: a copy in /tmp ran from / (the
#   script works from its folder's parent) and found no pack; two calls were lost that way.
#
# The call (carry ["runs/pack.tgz", "runs/whl"], timeout_s 600):
#   tar xzf runs/pack.tgz -C runs && python3 -m pip install -q --no-index --no-deps --no-compile \
#   --target /tmp/site runs/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 || exit 1;
#   nvidia-smi -L; bash models/denoiser-next-gpu.sh runs/pack $OUT/a 8.5 > $OUT/a.log 2>&1; echo "rc=$?";
#   tr '\r' '\n' < $OUT/a.log | grep -v 'ex/s' | tail -40
# Three files come back (the log, the checkpoint, its state).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 3 ]; then
  echo "usage: bash models/denoiser-next-gpu.sh PACK_DIR OUT_DIR MINUTES (see the comment at the top)" >&2
  exit 2
fi
PACK=$1 OUTDIR=$2 MINUTES=$3
mkdir -p "$OUTDIR"
RTCONV_CACHE=$PACK python3 -m rtconv train denoise --corpus realistic --resume "${RESUME:-models/denoiser.safetensors}" \
  --kinds mix=0.74,speech=0.16,noise=0.10 \
  --bands full=0.40,telephone=0.15,hp300=0.10,hp150=0.05,8k=0.08,11k=0.06,16k=0.08,22k=0.05,32k=0.03 \
  --loss "${LOSS:-si_sdr + 10*sc + 5*cmrs + 4*pesq + 40*stoi}" --optimizer adam --lr "${LR:-5e-5}" --schedule cosine --clip-grad 5 \
  --batch-size 64 --epochs 40 --sample-rate 48000 --seconds 4 --snr-db=-5,30 --level-db=-35,6 \
  --train-examples "${EXAMPLES:-12000}" --val-examples 256 --test-examples 32 --val-split dev --seed "${SEED:-311}" \
  --device "${DEVICE:-cuda}" --workers "${WORKERS:-15}" --time-budget "$MINUTES" \
  --name denoiser --out "$OUTDIR/gpu.safetensors"
