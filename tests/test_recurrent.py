"""The recurrent frame layer (FrameGRU): exact streaming, carried state, growing a trained model."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from _streams import kinds, stream_in_sizes
from rtconv import ConfigError, Streamer
from rtconv.denoiser import ConvDenoiser
from rtconv.framed import Framed, FrameGRU, FrameNet, MaskGate, PairPower, StridedConv1d, TransposedConv1d
from rtconv.layers import Activation, MimoConv1d, Residual
from rtconv.models import Model, transfer_weights


class _GRUNet(Model):
    arch = "_test_gru"

    def __init__(self, taps=8, stride=4, width=6, hidden=5, rowmajor=True):
        super().__init__()
        seq = FrameNet if rowmajor else nn.Sequential
        est = seq(
            PairPower(),
            MimoConv1d(width // 2, 4, 2),
            Activation("tanh"),
            Residual(nn.Sequential(FrameGRU(4, hidden), MimoConv1d(hidden, 4, 1))),
            FrameGRU(4, hidden),
            MimoConv1d(hidden, width // 2, 1),
            Activation("sigmoid"),
        )
        # a mask gate as the body runs row-major; wrapped, the generic column cells
        gate = MaskGate(est) if rowmajor else nn.Sequential(MaskGate(est))
        self.body = nn.Sequential(Framed(
            StridedConv1d(1, width, taps, stride), gate, TransposedConv1d(width, 1, taps, stride)))
        self.layout = "framed:rows" if rowmajor else "framed:columns"


def _offline(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x.T))[:, None])[:, 0].numpy().T


def _assert_exact(model, x, sizes):
    ref = _offline(model.to(torch.float64 if x.dtype == np.float64 else torch.float32), x)
    got, s = stream_in_sizes(model, x, sizes)
    assert getattr(model, "layout", "framed:rows") in kinds(s)
    got = got[model.latency :]
    assert got.shape == ref.shape
    if ref.size:
        tol = 1e-5 if x.dtype == np.float32 else 1e-11
        assert np.abs(got - ref).max() <= tol * max(np.abs(ref).max(), 1e-12)


@pytest.mark.parametrize("rowmajor", [True, False])
@pytest.mark.parametrize("sizes", [[1], [3], [128], [4096], [5, 1, 13, 0, 2, 96]])
def test_a_gru_streams_exactly_at_any_block_size(rowmajor, sizes):
    torch.manual_seed(3)
    model = _GRUNet(rowmajor=rowmajor).double()
    x = np.random.default_rng(4).normal(size=(997, 2))
    _assert_exact(model, x, sizes)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 16), st.integers(1, 8), st.integers(0, 300),
       st.lists(st.integers(0, 120), min_size=1, max_size=4).filter(lambda p: sum(p) > 0),
       st.booleans(), st.integers(0, 2**16))
def test_random_gru_models_stream_exactly(taps, stride, length, sizes, rowmajor, seed):
    torch.manual_seed(seed)
    model = _GRUNet(taps=max(taps, stride), stride=stride, rowmajor=rowmajor)
    x = np.random.default_rng(seed).normal(size=(length, 1)).astype(np.float32)
    _assert_exact(model, x, sizes)


def test_the_hidden_state_is_carried_and_reset():
    """The memory outlives the convolutions: a burst changes the output long after it, until reset."""
    torch.manual_seed(0)
    model = _GRUNet(taps=8, stride=4)
    with torch.no_grad():  # update gates near 1: a memory of a few hundred frames
        for m in model.modules():
            if isinstance(m, FrameGRU):
                m.gru.bias_ih_l0[m.hidden : 2 * m.hidden] = 6.0
                m.gru.weight_ih_l0.mul_(4.0)
    rf = model.receptive_field
    burst = np.zeros((300, 1), np.float32)
    burst[:200] = np.random.default_rng(0).normal(size=(200, 1))
    probe = np.random.default_rng(1).normal(size=(400, 1)).astype(np.float32) * 0.1
    quiet = np.zeros_like(burst)
    assert len(burst) > 10 * rf  # far beyond what the convolutions see
    s = Streamer(model, channels=1)
    s.process(burst)
    after_burst = s.process(probe)
    s.reset()
    s.process(quiet)
    after_quiet = s.process(probe)
    assert np.abs(after_burst - after_quiet).max() > 1e-3, "the GRU's state must carry over blocks"
    s.reset()
    s.process(quiet)
    np.testing.assert_array_equal(s.process(probe), after_quiet)  # reset really starts from zero
    assert model.recurrent and not ConvDenoiser().recurrent


def test_a_denoiser_grown_by_a_gru_keeps_its_function_and_checkpoint_round_trips(tmp_path):
    from rtconv.checkpoint import load, save

    torch.manual_seed(1)
    small = ConvDenoiser(window=32, hop=16, channels=8, blocks=2, activation="tanh", learn_filterbank=False)
    big = ConvDenoiser(**{**small.config, "gru": 6})
    copied, fresh = transfer_weights(small, big)
    assert (copied, fresh) == (len(list(small.parameters())), 6)  # 4 GRU tensors + its 1x1 projection
    x = torch.randn(2, 1, 3000)
    with torch.no_grad():
        torch.testing.assert_close(big(x), small(x), rtol=0, atol=1e-6)
    assert big.macs_per_second() > small.macs_per_second()
    assert big.config["gru"] == 6 and "gru" not in small.config
    # trained a little (non-zero projection), it streams exactly and survives a save/load
    with torch.no_grad():
        for p in big.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / "g.safetensors"
    save(big, path)
    again = load(path)
    with torch.no_grad():
        torch.testing.assert_close(again(x), big(x), rtol=0, atol=0)
    _assert_exact(again, np.random.default_rng(2).normal(size=(2000, 1)).astype(np.float32), [128, 7])


def test_transfer_refuses_a_tensor_with_no_place():
    with pytest.raises(ConfigError, match="no place in the new architecture"):
        transfer_weights(ConvDenoiser(window=32, hop=16, channels=8, blocks=2),
                         ConvDenoiser(window=32, hop=16, channels=6, blocks=2))


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_a_bad_gru_size_is_one_sentence(bad):
    with pytest.raises(ConfigError, match="gru"):
        ConvDenoiser(gru=bad)


def _tiny_denoise_task():
    from torch.utils.data import TensorDataset

    from rtconv.train.tasks import TaskData

    g = torch.Generator().manual_seed(0)
    clean = torch.sin(torch.linspace(0, 400, 2048)).repeat(24, 1, 1) * torch.rand(24, 1, 1, generator=g)
    noisy = clean + 0.1 * torch.randn(24, 1, 2048, generator=g)
    ds = TensorDataset(noisy, clean)
    return TaskData(name="denoise", train=ds, val=ds, test=ds, in_channels=1, out_channels=1,
                    sample_rate=8000, outputs=["speech"], default_arch=("framed_denoiser", {}))


def test_training_resumed_with_arch_args_grows_the_model_and_records_the_step(tmp_path):
    """``rtconv train --resume small --arch-arg gru=6``: the old weights carried, the chain kept."""
    from rtconv.checkpoint import load, read_metadata
    import argparse

    from rtconv.cli.train import build_config, configure
    from rtconv.train.trainer import TrainConfig, train

    small = dict(window=32, hop=16, channels=8, blocks=2, activation="tanh", learn_filterbank=False)
    first = tmp_path / "small.safetensors"
    base = dict(task="denoise", task_options={}, optimizer="adam", lr=1e-3, epochs=1, batch_size=8,
                loss="mse", progress=False, seed=1)
    train(TrainConfig(**base, arch="framed_denoiser", arch_config=small, out=str(first),
                      command="rtconv train (small)"), task_data=_tiny_denoise_task(), log=lambda s: None)
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["denoise", "--resume", str(first), "--arch-arg", "gru=6"])
    cfg = build_config(args)
    assert cfg.arch is None and cfg.arch_config == {"gru": 6}  # not a new mimo_cnn: grow the resumed one
    lines = []
    grown = tmp_path / "grown.safetensors"
    train(TrainConfig(**base, resume=str(first), arch_config={"gru": 6}, out=str(grown),
                      command="rtconv train --resume small --arch-arg gru=6"),
          task_data=_tiny_denoise_task(), log=lines.append)
    assert any("grew framed_denoiser" in ln and "same output before training" in ln for ln in lines)
    model = load(grown)
    assert model.config["gru"] == 6 and model.recurrent
    prov = read_metadata(grown)["provenance"]
    assert prov["chain"] == ["rtconv train (small)"]
    assert len(prov["history"]["train_loss"]) == 2


def test_offline_file_processing_of_a_recurrent_model_equals_one_forward_over_the_whole_signal():
    """Overlapping chunks would restart the GRU's state; files process it in one pass from the start."""
    from rtconv import files

    torch.manual_seed(5)
    model = ConvDenoiser(window=32, hop=16, channels=8, blocks=1, activation="tanh", gru=6)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, FrameGRU):
                m.gru.bias_ih_l0[m.hidden : 2 * m.hidden] = 6.0  # long memory: chunks would show
        for p in model.gate.estimator[-2].parameters():
            p.normal_(0, 0.3)
        model.gate.estimator[-3].body[-1].weight.normal_(0, 0.5)
    model.sample_rate = 16000
    x = np.random.default_rng(0).normal(size=(700_000,)).astype(np.float32) * 0.1
    with torch.no_grad():
        ref = model(torch.from_numpy(x)[None, None])[0, 0].numpy()
    got = files.process_array(x, 16000, model, offline=True, prime=False)[:, 0]  # from silence, as ref
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()
