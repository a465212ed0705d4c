"""The end-of-training report: one PNG a person can read at a glance.

Panels: loss curves (train and validation per epoch); kernel stem plots as
small multiples, one kernel per plot on a shared weight axis, in
impulse-response order (tap 0 = current sample; at most :data:`MAX_KERNELS`
kernels per layer and :data:`MAX_STEM_PLOTS` plots); frequency responses of those
kernels (dB against Hz, or cycles per 256 samples for the abstract tasks);
spectra of a test example before and after the filter against the target;
and the test metrics as text.

Classifiers (tasks ``classify`` and ``vad``) get their own page: loss
curves, the test metrics (accuracy and a confusion matrix, or the VAD's AUC
per input-SNR bucket against an energy detector), and probability tracks of
test examples.  :func:`evaluate_classifier` computes a classifier's test
metrics (the ``classify`` task's :attr:`TaskData.evaluate`), and
:func:`confusion_matrix` / :func:`format_confusion` the matrix.

matplotlib comes with the ``train`` extra and is imported only here, with
the non-interactive Agg backend, so training works on a headless machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["write_report", "MAX_KERNELS", "MAX_STEM_PLOTS", "confusion_matrix", "format_confusion", "evaluate_classifier"]

MAX_KERNELS = 8
#: Small multiples in the kernel panel: beyond this, kernels are taken round-robin over layers.
MAX_STEM_PLOTS = 12


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
    from .evaluate import mse_change

    t = metrics.get("test", {})
    lines = [
        f"train loss {metrics.get('train_loss', float('nan')):.5g}   "
        f"test loss {metrics.get('test_loss', float('nan')):.5g}   ({metrics.get('loss')})",
        f"test MSE {t.get('input_mse', float('nan')):.4g} -> {t.get('output_mse', float('nan')):.4g}"
        f"  ({mse_change(t.get('input_mse', float('nan')), t.get('output_mse', float('nan')))})",
    ]
    for name, e in t.get("outputs", {}).items():
        lines.append(f"{name}: SNR {e['input_snr_db']:.2f} -> {e['output_snr_db']:.2f} dB "
                     f"({e['snr_improvement_db']:+.2f}), SI-SDR {e['si_sdr_improvement_db']:+.2f} dB")
        for b in e.get("buckets", []):
            lines.append(f"   input SNR {b['bucket']:>10}: n={b['count']:<4} "
                         f"SNR {b['snr_improvement_db']:+.2f} dB  SI-SDR {b['si_sdr_improvement_db']:+.2f} dB")
    return "\n".join(lines)


def confusion_matrix(true, predicted, classes: int) -> np.ndarray:
    """Counts ``(classes, classes)``: row = true class, column = predicted class."""
    m = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(m, (np.asarray(true, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return m


def format_confusion(matrix, names) -> str:
    """The confusion matrix as a Markdown table (rows true, columns predicted), with each row's recall."""
    m = np.asarray(matrix)
    lines = ["| true \\ predicted | " + " | ".join(names) + " | recall |",
             "|---|" + "---:|" * (len(names) + 1)]
    for i, n in enumerate(names):
        total = m[i].sum()
        recall = f"{m[i, i] / total:.3f}" if total else "-"
        lines.append(f"| {n} | " + " | ".join(str(int(v)) for v in m[i]) + f" | {recall} |")
    return "\n".join(lines)


def _snr_label(snr: float, edges=(0.0, 10.0, 20.0)) -> str:
    lo = -np.inf
    for hi in (*edges, np.inf):
        if lo <= snr < hi:
            return f"< {hi:g} dB" if lo == -np.inf else f">= {lo:g} dB" if hi == np.inf else f"{lo:g}..{hi:g} dB"
        lo = hi
    return "?"


@torch.no_grad()
def evaluate_classifier(model, data, loss_fn, device, classes: list[str], infos: list[dict] | None = None) -> dict:
    """Test metrics of a classifier whose targets are one-hot tracks, constant over each example.

    Each example is classified by the mean of its probability tracks after
    the warm-up (the first ``receptive_field - 1`` samples, which the
    trainer's loss skips too): ``accuracy`` and ``confusion`` count those
    decisions; ``sample_accuracy`` counts every sample's own argmax (what a
    stream shows at each instant).  With ``infos`` (each with ``snr_db``),
    also the accuracy per input-SNR bucket.
    """
    from torch.utils.data import DataLoader

    from . import losses as _losses

    model.eval()
    warm = model.receptive_field - 1
    outs, ys, total, count = [], [], 0.0, 0
    for x, y in DataLoader(data, batch_size=64):
        o = model(x.to(device)).cpu()
        a, b = (warm, 0) if model.causal else (warm, warm)
        if a + b < x.shape[-1]:
            o, y, x = o[..., a: o.shape[-1] - b], y[..., a: y.shape[-1] - b], x[..., a: x.shape[-1] - b]
        total += float(_losses.apply(loss_fn, o, y, x)) * x.shape[0]
        count += x.shape[0]
        outs.append(o.numpy())
        ys.append(y.numpy())
    out, y = np.concatenate(outs), np.concatenate(ys)
    true = y.mean(-1).argmax(1)
    pred = out.mean(-1).argmax(1)
    sample_acc = float(np.mean(out.argmax(1) == y.argmax(1)))
    conf = confusion_matrix(true, pred, len(classes))
    acc = float(np.mean(true == pred))
    result = {"kind": "classification", "classes": list(classes), "examples": int(len(true)),
              "warmup_samples_skipped": int(warm), "loss": total / max(1, count), "accuracy": acc,
              "sample_accuracy": sample_acc, "confusion": conf.tolist(),
              "recall": {c: (float(conf[i, i] / conf[i].sum()) if conf[i].sum() else None)
                         for i, c in enumerate(classes)}}
    if infos is not None and len(infos) == len(true) and all("snr_db" in i for i in infos):
        labels = [_snr_label(float(i["snr_db"])) for i in infos]
        rows = []
        for lab in sorted(set(labels), key=lambda s: (s[0] != "<", s)):
            m = np.array([l_ == lab for l_ in labels])
            rows.append({"bucket": lab, "count": int(m.sum()), "accuracy": float(np.mean(true[m] == pred[m]))})
        result["buckets"] = rows
    result["summary"] = (f"test: loss {result['loss']:.5g}; accuracy {acc:.3f} per example "
                         f"({sample_acc:.3f} per sample) over {len(true)} examples, chance {1 / len(classes):.3f}")
    result["headline"] = {"test_accuracy": acc, "test_sample_accuracy": sample_acc}
    return result


def _classifier_text(metrics: dict) -> str:
    t = metrics.get("test", {})
    lines = [f"train loss {metrics.get('train_loss', float('nan')):.5g}   "
             f"test loss {metrics.get('test_loss', float('nan')):.5g}   ({metrics.get('loss')})", ""]
    if t.get("kind") == "classification":
        names = t["classes"]
        lines += [f"accuracy {t['accuracy']:.3f} per example, {t['sample_accuracy']:.3f} per sample "
                  f"({t['examples']} test examples)", "", "confusion (rows true, columns predicted):",
                  " " * 10 + "".join(f"{n[:8]:>9}" for n in names)]
        for n, row in zip(names, t["confusion"], strict=True):
            lines.append(f"{n[:9]:<10}" + "".join(f"{v:>9}" for v in row))
        for b in t.get("buckets", []):
            lines.append(f"input SNR {b['bucket']:>11}: accuracy {b['accuracy']:.3f} (n={b['count']})")
    else:
        lines += [f"{'group':<14}{'frames':>8}{'speech':>8}{'AUC':>7}{'acc':>7}{'energy AUC':>12}{'acc':>7}"]
        def f(v, width, digits=3):
            return f"{'-':>{width}}" if v is None else f"{v:>{width}.{digits}f}"

        for r in t.get("rows", []):
            lines.append(f"{r['group']:<14}{r['frames']:>8}{f(r['speech'], 8, 2)}{f(r['auc'], 7)}"
                         f"{f(r['accuracy'], 7)}{f(r['energy_auc'], 12)}{f(r['energy_accuracy'], 7)}")
        lines.append("(energy detector: frame energy, its best threshold chosen with hindsight)")
    return "\n".join(lines)


def _classifier_report(path, model, history, test_data, task, metrics, examples: int = 4) -> Path:
    plt = _pyplot()
    t = metrics.get("test", {})
    fig = plt.figure(figsize=(16, 4.5 + 2.2 * examples), constrained_layout=True)
    gs = fig.add_gridspec(1 + examples, 3)
    ax = fig.add_subplot(gs[0, 0])
    ep = np.arange(1, len(history.get("train_loss", [])) + 1)
    ax.plot(ep, history.get("train_loss", []), "o-", label="train")
    ax.plot(ep, history.get("val_loss", []), "s-", label="validation")
    if metrics.get("best_epoch"):
        ax.axvline(metrics["best_epoch"], color="gray", ls=":", label="best (kept)")
    ax.set(xlabel="epoch", ylabel=f"{metrics.get('loss', 'loss')} loss", title="loss curves")
    ax.legend()
    ax = fig.add_subplot(gs[0, 1])
    if t.get("kind") == "classification":
        conf = np.asarray(t["confusion"])
        ax.imshow(conf, cmap="Blues")
        names = t["classes"]
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(names)), names)
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, str(conf[i, j]), ha="center", va="center",
                        color="white" if conf[i, j] > conf.max() / 2 else "black")
        ax.set(xlabel="predicted", ylabel="true", title=f"confusion, accuracy {t['accuracy']:.3f}")
    else:
        ax.axis("off")
    ax = fig.add_subplot(gs[0, 2])
    ax.axis("off")
    ax.text(0, 1, _classifier_text(metrics), va="top", family="monospace", fontsize=7)
    n = min(examples, len(test_data))
    with torch.no_grad():
        for i in range(n):
            x, y = test_data[i]
            p = model.eval()(x[None])[0].numpy()
            rate = task.sample_rate or 1
            time = np.arange(x.shape[-1]) / rate
            ax = fig.add_subplot(gs[1 + i, 0])
            ax.plot(time, x[0].numpy(), lw=0.5, color="gray")
            ax.set(xlabel="seconds" if task.sample_rate else "samples", ylabel="input", title=f"test example {i}")
            ax = fig.add_subplot(gs[1 + i, 1:])
            for c, name in enumerate(task.outputs):
                ax.plot(time, p[c], label=f"p({name})")
                if y[c].max() > 0:
                    ax.plot(time, y[c].numpy() * 1.02, ls="--", color="k", lw=0.8, label=f"target {name}")
            ax.set(ylim=(-0.05, 1.08), xlabel="seconds" if task.sample_rate else "samples",
                   ylabel="probability")
            ax.legend(fontsize=6, ncol=4)
    return _save_figure(fig, path, task, model)


def _save_figure(fig, path, task, model) -> Path:
    """Title the report page with the task and model, write it, and free the figure."""
    fig.suptitle(f"rtconv train: {task.name} — {model.arch} {model.config}", fontsize=10)
    path = Path(path)
    try:
        fig.savefig(path, dpi=80)
    except OSError as e:
        raise ConfigError(f"cannot write the report {str(path)!r}: {e.strerror or e}.") from None
    finally:
        _pyplot().close(fig)
    return path


def _stem_choice(kernels: list) -> list:
    """At most MAX_STEM_PLOTS kernels: round-robin over layers so every layer is seen."""
    if len(kernels) <= MAX_STEM_PLOTS:
        return kernels
    layers: dict = {}
    for item in kernels:
        layers.setdefault(item[0].split(" in")[0].split(" (")[0], []).append(item)
    out, i = [], 0
    while len(out) < MAX_STEM_PLOTS:
        row = [group[i] for group in layers.values() if i < len(group)]
        out += row[: MAX_STEM_PLOTS - len(out)]
        i += 1
    return out


def _short(label: str) -> str:
    """'layer 1 in3->out0 (dilation 2)' -> 'L1 3→0 d2': a title that fits a small plot."""
    return (label.replace("layer ", "L").replace(" in", " ").replace("->out", "→")
            .replace(" (dilation ", " d").rstrip(")"))


def _stem_panels(fig, cell, kernels: list) -> list:
    """The learned kernels as small multiples (one stem plot each, shared axes); returns the axes."""
    shown = _stem_choice(kernels)
    n = len(shown)
    cols = min(5, n) or 1
    rows = -(-n // cols) if n else 1
    sub = fig.add_subfigure(cell)
    grid = sub.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    lim = max((float(np.abs(k).max()) for _, k in shown), default=1.0) * 1.1 or 1.0
    axes = []
    for i, ax in enumerate(grid.flat):
        if i >= n:
            ax.set_visible(False)
            continue
        label, k = shown[i]
        markers, stems, _ = ax.stem(np.arange(k.size), k, basefmt=" ")
        markers.set_markersize(2 if k.size > 64 else 3)
        stems.set_linewidth(0.8)
        ax.axhline(0, color="gray", lw=0.5)
        ax.set_ylim(-lim, lim)
        ax.set_title(_short(label), fontsize=7, pad=2)
        ax.tick_params(labelsize=6, length=2)
        axes.append(ax)
    what = f"learned kernels ({n} of {len(kernels)} shown)" if n < len(kernels) else "learned kernels"
    sub.suptitle(what, fontsize=10)
    sub.supxlabel("tap (0 = current sample, impulse-response order)", fontsize=8)
    sub.supylabel("weight", fontsize=8)
    return axes


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
    if (metrics.get("test") or {}).get("kind") in ("classification", "vad"):
        return _classifier_report(path, model, history, test_data, task, metrics)
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

    _stem_panels(fig, gs[1, 0], kernels)

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

    return _save_figure(fig, path, task, model)
