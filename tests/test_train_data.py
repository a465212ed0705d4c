"""Behaviour of the training data: speech synthesis, noise families, denoise mixing, splits."""

import numpy as np
import pytest
import soundfile as sf
import torch

from rtconv.errors import AudioFileError, ConfigError
from rtconv.train import noise, speech, tasks


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("speech-cache")


def test_train_and_test_utterances_share_no_voice_variant_or_sentence():
    tr = speech.utterances("train", 300, seed=0)
    te = speech.utterances("test", 100, seed=0)
    assert not {u.text for u in tr} & {u.text for u in te}
    assert not {u.voice.split("+")[0] for u in tr} & {u.voice.split("+")[0] for u in te}
    assert not {u.voice.split("+")[1] for u in tr} & {u.voice.split("+")[1] for u in te}
    assert len({u.text for u in tr}) == 300


def test_utterances_are_reproducible_from_the_seed():
    assert speech.utterances("train", 5, seed=4) == speech.utterances("train", 5, seed=4)
    assert speech.utterances("train", 5, seed=4) != speech.utterances("train", 5, seed=5)


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_synthesized_speech_is_cached_normalised_and_at_the_asked_rate(rate, cache):
    u = speech.utterances("test", 1, seed=1)[0]
    x = speech.synthesize(u, rate, cache)
    assert x.dtype == np.float32 and x.ndim == 1
    assert 0.5 * rate < len(x) < 10 * rate  # a sentence lasts between 0.5 and 10 s
    assert np.sqrt(np.mean(x**2)) == pytest.approx(speech.TARGET_RMS, rel=1e-3)
    cached = cache / str(rate) / f"{u.key()}.npy"
    assert cached.exists()
    np.save(cached, np.full(7, 0.5, np.float32))  # prove the second call reads the cache
    assert len(speech.synthesize(u, rate, cache)) == 7


def test_user_speech_folder_is_read_resampled_and_normalised(tmp_path):
    sf.write(tmp_path / "a.wav", 0.5 * np.sin(np.arange(44100) / 10.0), 44100)
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "b.flac", np.random.default_rng(0).standard_normal((8000, 2)) * 0.1, 8000)
    xs = speech.load_folder(tmp_path, 16000)
    assert [len(x) for x in xs] == [16000, 16000]
    assert all(np.sqrt(np.mean(x**2)) == pytest.approx(speech.TARGET_RMS, rel=1e-3) for x in xs)


def test_missing_or_empty_folder_is_refused_with_its_name(tmp_path):
    with pytest.raises(AudioFileError, match="does not exist"):
        speech.load_folder(tmp_path / "nope", 16000)
    with pytest.raises(AudioFileError, match="holds no readable audio"):
        speech.load_folder(tmp_path, 16000)


def test_a_file_that_is_not_audio_in_the_folder_is_named_in_one_sentence_with_what_to_do(tmp_path):
    sf.write(tmp_path / "a.wav", 0.1 * np.ones(16000), 16000)
    (tmp_path / "notes.wav").write_bytes(b"not a wave file at all" * 10)
    with pytest.raises(AudioFileError) as e:
        speech.load_folder(tmp_path, 16000)
    msg = str(e.value)
    assert msg.startswith(f"cannot read {str(tmp_path / 'notes.wav')!r} in the audio folder {str(tmp_path)!r} (")
    assert msg.endswith("; convert it to WAV or FLAC, or move it out of the folder.")
    assert ".." not in msg and "\n" not in msg and msg.count(str(tmp_path / "notes.wav")) == 1


def test_bad_split_is_refused():
    with pytest.raises(ConfigError, match="split must be one of .* got 'dev'"):
        speech.utterances("dev", 3)


@pytest.mark.parametrize("family", noise.NOISE_FAMILIES)
@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("n", [1, 37, 16000])
def test_every_noise_family_gives_finite_unit_rms_noise(family, split, n):
    rng = np.random.default_rng(0)
    pool = [np.random.default_rng(1).standard_normal(3000).astype(np.float32)]
    x = noise.generate(family, n, 16000, rng, split, pool)
    assert x.shape == (n,) and x.dtype == np.float32 and np.isfinite(x).all()
    if n > 1:
        assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-4)


def test_noise_is_reproducible_from_the_generator():
    a = noise.generate("hum", 1000, 16000, np.random.default_rng(5))
    b = noise.generate("hum", 1000, 16000, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_hum_fundamental_differs_between_train_and_test_ranges():
    def f0(split, seed):
        x = noise.generate("hum", 64000, 16000, np.random.default_rng(seed), split).astype(np.float64)
        spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
        f = np.fft.rfftfreq(x.size, 1 / 16000)
        band = (f > 40) & (f < 70)
        return f[band][np.argmax(spec[band])]

    train = [f0("train", s) for s in range(6)]
    test = [f0("test", s) for s in range(6)]
    assert all(min(abs(v - 50), abs(v - 60)) < 1.0 for v in train)
    assert all(51.5 < v < 58.5 for v in test)


def test_held_out_family_is_not_drawn_for_training():
    src = noise.NoiseSource(16000, "train", babble_speech=[np.ones(100, np.float32)] * 3)
    assert "fan" not in src.families and "babble" in src.families
    rng = np.random.default_rng(0)
    assert not any("fan" in src(100, rng)[1] for _ in range(200))
    assert "fan" in noise.NoiseSource(16000, "test").families


def test_noise_source_refuses_unknown_family_and_babble_without_speech():
    with pytest.raises(ConfigError, match="unknown noise family 'rain'"):
        noise.NoiseSource(16000, families=["rain"])
    with pytest.raises(ConfigError, match="babble_speech"):
        noise.NoiseSource(16000, families=["babble"])


def test_denoise_example_has_the_drawn_snr_and_the_same_gain_on_input_and_target():
    sp = [np.sin(np.arange(20000) / 7.0).astype(np.float32) * speech.TARGET_RMS * np.sqrt(2)]
    ds = tasks.DenoiseDataset(sp, noise.NoiseSource(8000, "train", ["white"], second_prob=0), 10,
                              sample_rate=8000, seconds=0.5, snr_db=(-5, 20), gain_db=(-12, 6))
    for i in range(10):
        x, y = ds[i]
        info = ds.info(i)
        assert x.shape == y.shape == (1, 4000)
        clean, mix = y.numpy()[0].astype(np.float64), x.numpy()[0].astype(np.float64)
        if np.abs(mix).max() < 1.0:  # unclipped: the SNR is exactly the drawn one
            snr = 10 * np.log10(np.sum(clean**2) / np.sum((mix - clean) ** 2))
            assert snr == pytest.approx(info["snr_db"], abs=1e-3)
        assert np.sqrt(np.mean(clean**2)) == pytest.approx(
            speech.TARGET_RMS * 10 ** (info["gain_db"] / 20), rel=0.05)


def test_denoise_task_uses_held_out_voices_and_noise_for_test(cache):
    td = tasks.make_task("denoise", sample_rate=8000, seconds=0.2, utterances=4, train_examples=4,
                         val_examples=2, test_examples=20, cache_dir=str(cache))
    assert "fan" in td.options["test_noise"] and "fan" not in td.options["train_noise"]
    assert td.test.noise.split == "test" and td.train.noise.split == "train"
    assert {td.test.info(i)["noise"].split("+")[0] for i in range(20)} - set(td.options["train_noise"])


def test_user_folders_replace_espeak_and_join_the_noise_draw(tmp_path):
    sp, nz = tmp_path / "speech", tmp_path / "noise"
    sp.mkdir(), nz.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        sf.write(sp / f"s{i}.wav", rng.standard_normal(8000) * 0.1, 8000)
    sf.write(nz / "n.wav", rng.standard_normal(8000) * 0.1, 8000)
    td = tasks.make_task("denoise", sample_rate=8000, seconds=0.25, speech_dir=str(sp),
                         noise_dir=str(nz), train_examples=4, val_examples=2, test_examples=2)
    assert len(td.train.speech) == 8 and len(td.val.speech) == 1 and len(td.test.speech) == 1
    assert "file" in td.train.noise.families
    assert td.options["speech"] == str(sp)


@pytest.mark.parametrize("rate", [16000, 48000])
def test_crossover_targets_add_up_to_the_noiseless_input(rate):
    ds = tasks.CrossoverDataset(20, sample_rate=rate, seconds=0.05, noise_std=(0.0, 0.0))
    for i in range(20):
        x, y = ds[i]
        assert y.shape == (2, x.shape[1])
        np.testing.assert_allclose(y.sum(0).numpy(), x[0].numpy(), atol=1e-5)


def test_crossover_low_output_holds_only_low_frequencies():
    ds = tasks.CrossoverDataset(10, sample_rate=16000, seconds=0.5, low_band=(50, 400),
                                high_band=(1600, 7000), noise_std=(0.0, 0.0))
    f = np.fft.rfftfreq(8000, 1 / 16000)
    for i in range(10):
        low = np.abs(np.fft.rfft(ds[i][1][0].numpy() * np.hanning(8000)))
        assert low[f > 1700].max() < 1e-3 * max(low.max(), 1e-9)


def test_examples_that_cannot_all_be_held_in_memory_are_refused_before_they_are_made(monkeypatch):
    pages = {"SC_PHYS_PAGES": 1024, "SC_PAGE_SIZE": 4096}  # a 4 MiB machine
    monkeypatch.setattr("os.sysconf", lambda name: pages[name])
    made = []

    class Big(torch.utils.data.Dataset):
        def __len__(self):
            return 100

        def __getitem__(self, i):
            made.append(i)
            return torch.zeros(1, 8000), torch.zeros(1, 8000)  # 64 kB a pair: 6.1 MiB in all

    with pytest.raises(ConfigError, match=r"the 100 examples need 0\.0 GiB in memory and this machine has 0\.0 GiB; "
                                          r"use fewer examples \(--train-examples\) or shorter ones \(--seconds\)\."):
        tasks.materialize(Big())
    assert made == [0]
    pages["SC_PHYS_PAGES"] = 4096  # 16 MiB: they fit
    assert len(tasks.materialize(Big())) == 100
