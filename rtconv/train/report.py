"""The end-of-training report: one PNG a person can read at a glance.

Panels: loss curves (train and validation per epoch); kernel stem plots of
every convolution layer in impulse-response order (tap 0 = current sample;
at most :data:`MAX_KERNELS` kernels per layer); frequency responses of those
kernels (dB against Hz, or cycles per 256 samples for the abstract tasks);
spectra of a test example before and after the filter against the target;
and the test metrics as text.

matplotlib comes with the ``train`` extra and is imported only here, with
the non-interactive Agg backend, so training works on a headless machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["write_report", "MAX_KERNELS"]

MAX_KERNELS = 8


def _pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise ConfigError(
            "the training report needs matplotlib; install it with pip install 'rtconv[train]' "
            "or leave out --report."
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _freq_axis(n: int, sample_rate: int | None) -> tuple[np.ndarray, str]:
    f = np.fft.rfftfreq(n)
    if sample_rate:
        return f * sample_rate, "frequency (Hz)"
    return f * 256, "cycles per 256 samples"


def _kernels(model) -> list[tuple[str, np.ndarray]]:
    out = []
    for i, layer in enumerate(model.conv_layers()):
        k = layer.kernel  # (out, in, taps), impulse-response order
        pairs = [(g, f) for g in range(k.shape[0]) for f in range(k.shape[1])][:MAX_KERNELS]
        for g, f in pairs:
            label = f"layer {i}" + (f" in{f}->out{g}" if k.shape[0] * k.shape[1] > 1 else "")
            if layer.dilation > 1:
                dense = np.zeros((k.shape[2] - 1) * layer.dilation + 1)
                dense[:: layer.dilation] = k[g, f]
                out.append((label + f" (dilation {layer.dilation})", dense))
            else:
                out.append((label, k[g, f]))
    return out


def _summary(metrics: dict) -> str:
    t = metrics.get("test", {})
    lines = [
        f"train loss {metrics.get('train_loss', float('nan')):.5g}   "
        f"test loss {metrics.get('test_loss', float('nan')):.5g}   ({metrics.get('loss')})",
        f"test MSE {t.get('input_mse', float('nan')):.4g} -> {t.get('output_mse', float('nan')):.4g}"
        f"  ({t.get('mse_reduction', float('nan')):.2f}x lower)",
    ]
    for name, e in t.get("outputs", {}).items():
        lines.append(f"{name}: SNR {e['input_snr_db']:.2f} -> {e['output_snr_db']:.2f} dB "
                     f"({e['snr_improvement_db']:+.2f}), SI-SDR {e['si_sdr_improvement_db']:+.2f} dB")
        for b in e.get("buckets", []):
            lines.append(f"   input SNR {b['bucket']:>10}: n={b['count']:<4} "
                         f"SNR {b['snr_improvement_db']:+.2f} dB  SI-SDR {b['si_sdr_improvement_db']:+.2f} dB")
    return "\n".join(lines)


def write_report(path, model, history: dict, test_data, task, metrics: dict, examples: int = 8) -> Path:
    """Draw the report of a finished run to ``path`` (PNG); returns the path.

    Parameters
    ----------
    path : str or path-like
    model : rtconv.models.Model
        The trained model (CPU).
    history : dict
        ``train_loss`` and ``val_loss`` lists per epoch.
    test_data : Dataset
        Held-out ``(input, target)`` pairs; the first ``examples`` are used
        for the average spectra.
    task : rtconv.train.tasks.TaskData
    metrics : dict
        As stored in the checkpoint.
    """
    plt = _pyplot()
    kernels = _kernels(model)
    outs = task.outputs
    rows = 2 + len(outs)
    fig = plt.figure(figsize=(14, 3.6 * rows), constrained_layout=True)
    gs = fig.add_gridspec(rows, 2)

    ax = fig.add_subplot(gs[0, 0])
    ep = np.arange(1, len(history.get("train_loss", [])) + 1)
    ax.plot(ep, history.get("train_loss", []), "o-", label="train")
    ax.plot(ep, history.get("val_loss", []), "s-", label="validation")
    if metrics.get("best_epoch"):
        ax.axvline(metrics["best_epoch"], color="gray", ls=":", label="best (kept)")
    ax.set(xlabel="epoch", ylabel=f"{metrics.get('loss', 'loss')} loss", title="loss curves")
    if len(ep) and min(min(history["train_loss"]), min(history["val_loss"])) > 0:
        ax.set_yscale("log")
    ax.legend()

    ax = fig.add_subplot(gs[0, 1])
    ax.axis("off")
    ax.text(0, 1, _summary(metrics), va="top", family="monospace", fontsize=8)

    ax = fig.add_subplot(gs[1, 0])
    for label, k in kernels:
        markers, stems, base = ax.stem(np.arange(k.size), k, label=label)
        plt.setp(stems, alpha=0.6)
    ax.set(xlabel="tap (0 = current sample, impulse-response order)", ylabel="weight",
           title="learned kernels")
    ax.legend(fontsize=6, ncol=2)

    ax = fig.add_subplot(gs[1, 1])
    nfft = 4096
    for label, k in kernels:
        f, unit = _freq_axis(nfft, task.sample_rate)
        h = np.abs(np.fft.rfft(k, nfft))
        ax.plot(f, 20 * np.log10(h + 1e-9), label=label)
    ax.set(xlabel=unit, ylabel="magnitude (dB)", title="kernel frequency responses")
    if task.sample_rate:
        ax.set_xscale("log")
        ax.set_xlim(20, task.sample_rate / 2)
    ax.legend(fontsize=6, ncol=2)

    n = min(examples, len(test_data))
    xs = torch.stack([test_data[i][0] for i in range(n)])
    ys = torch.stack([test_data[i][1] for i in range(n)])
    with torch.no_grad():
        os_ = model.eval()(xs)
    length = xs.shape[-1]
    win = np.hanning(length)
    f, unit = _freq_axis(length, task.sample_rate)

    def psd(a: torch.Tensor) -> np.ndarray:
        spec = np.abs(np.fft.rfft(a.numpy() * win, axis=-1)) ** 2
        return 10 * np.log10(spec.mean(axis=0) + 1e-20)

    for c, name in enumerate(outs):
        ax = fig.add_subplot(gs[2 + c, :])
        ax.plot(f, psd(xs[:, 0]), label="input (before)", alpha=0.7)
        ax.plot(f, psd(os_[:, c]), label=f"output {name} (after)", alpha=0.9)
        ax.plot(f, psd(ys[:, c]), label=f"target {name}", alpha=0.7, ls="--")
        if task.sample_rate:
            ax.set_xscale("log")
            ax.set_xlim(20, task.sample_rate / 2)
        ax.set(xlabel=unit, ylabel="power (dB)",
               title=f"spectra before/after, mean of {n} test examples: {name}")
        ax.legend(fontsize=8)

    fig.suptitle(f"rtconv train: {task.name} — {model.arch} {model.config}", fontsize=10)
    path = Path(path)
    try:
        fig.savefig(path, dpi=80)
    except OSError as e:
        raise ConfigError(f"cannot write the report {str(path)!r}: {e.strerror or e}.") from None
    finally:
        plt.close(fig)
    return path
