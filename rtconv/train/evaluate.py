"""Test metrics of a trained model: the loss, MSE and SNR / SI-SDR improvements per input-SNR bucket and
noise family, its filter's warm-up samples skipped (:func:`_trim`)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import metrics as _metrics
from ..models import Model
from . import losses as _losses


def _trim(model: Model, train_warmup: bool = False) -> tuple[int, int]:
    """Samples to skip at the (start, end) of each example: the filter's warm-up (none with ``train_warmup``)."""
    if train_warmup:
        return (0, 0)
    w = model.receptive_field - 1
    return (w, 0) if model.causal else (w, w)


def _cut(x: torch.Tensor, trim: tuple[int, int]) -> torch.Tensor:
    a, b = trim
    if a + b >= x.shape[-1]:
        return x  # examples shorter than the warm-up: use everything rather than nothing
    return x[..., a: x.shape[-1] - b]


@torch.no_grad()
def _predict(model: Model, data, device, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, outs = [], [], []
    for x, y in DataLoader(data, batch_size=batch_size):
        outs.append(model(x.to(device)).cpu())
        xs.append(x)
        ys.append(y)
    return torch.cat(xs).numpy(), torch.cat(ys).numpy(), torch.cat(outs).numpy()


#: |input SNR| beyond which an example has nothing to remove or nothing to keep (no improvement defined).
_DEFINED_SNR_DB = 60.0


def evaluate(model: Model, data, loss: Callable | str = "mse", device="cpu",
             outputs: list[str] | None = None, labels: list[str] | None = None) -> dict:
    """Test metrics of ``model`` on ``data`` (warm-up samples excluded).

    Returns a JSON-able dict: ``loss``, ``input_mse`` (noisy input vs
    target), ``output_mse``, ``mse_reduction`` (their ratio), and per output
    channel ``snr_improvement_db``, ``si_sdr_improvement_db`` and
    ``buckets`` (see :func:`rtconv.metrics.bucket_improvements`); with
    ``labels`` (one noise label per example) also ``per_noise`` means,
    grouped by the main noise family.
    """
    loss_fn = _losses.get_loss(loss, getattr(model, "sample_rate", None)) if isinstance(loss, str) else loss
    device = torch.device(device)
    model.eval()
    trim = _trim(model)
    own = _losses.needs_probe(loss_fn) and getattr(loss_fn, "probe", None) is None
    if own:  # called with the presence term unbound: a probe for this evaluation alone
        loss_fn = _losses.bind_probe(loss_fn, _losses.presence_probe(model, trim[0]))
    probe = getattr(loss_fn, "probe", None)
    if probe is not None:  # the loss below covers every batch: keep each batch's presence
        probe.keep, probe.outputs = True, []
    try:
        x, y, out = _predict(model, data, device)
        xt, yt, ot = (_cut(torch.from_numpy(a), trim) for a in (x, y, out))
        test_loss = float(_losses.apply(loss_fn, ot, yt, xt))
    finally:
        if probe is not None:
            probe.keep = False
            if own:
                probe.close()
    result: dict = {"examples": int(x.shape[0]), "warmup_samples_skipped": list(trim), "loss": test_loss}
    # the noisy reference for each output channel is the (mono) input itself
    xin = xt[:, :1].expand_as(yt) if xt.shape[1] == 1 else xt
    in_mse, out_mse = float(torch.mean((xin - yt) ** 2)), float(torch.mean((ot - yt) ** 2))
    result.update(input_mse=in_mse, output_mse=out_mse,
                  mse_reduction=in_mse / out_mse if out_mse > 0 else float("1e30"))
    names = outputs or [f"out{i}" for i in range(yt.shape[1])]
    per = {}
    for c, nm in enumerate(names):
        s, n_, e = yt[:, c].numpy(), xin[:, c].numpy(), ot[:, c].numpy()
        # An improvement is defined where there is something to keep and something to remove: clean
        # passthrough items (input SNR ~190 dB) and noise-only items (silent target) would otherwise
        # dominate the means (one clean item scored -170 dB "improvement"); they are counted apart.
        in_snr = np.atleast_1d(_metrics.snr_db(s, n_))
        mix = np.abs(in_snr) <= _DEFINED_SNR_DB
        if not mix.any():
            mix = np.ones_like(mix)
        rows = _metrics.bucket_improvements(s[mix], n_[mix], e[mix])
        entry = {
            "input_snr_db": rows[-1]["input_snr_db"],
            "output_snr_db": rows[-1]["output_snr_db"],
            "snr_improvement_db": rows[-1]["snr_improvement_db"],
            "input_si_sdr_db": rows[-1]["input_si_sdr_db"],
            "output_si_sdr_db": rows[-1]["output_si_sdr_db"],
            "si_sdr_improvement_db": rows[-1]["si_sdr_improvement_db"],
            "buckets": rows[:-1],
            "mixtures": int(mix.sum()),
        }
        if labels is not None:
            imp = np.atleast_1d(_metrics.snr_improvement_db(s, n_, e))[mix]
            simp = np.atleast_1d(_metrics.si_sdr_improvement_db(s, n_, e))[mix]
            fams: dict = {}
            # grouped by the main family: "pink+babble" counts as pink (babble is the quieter one)
            main = [lb.split("+")[0] for lb, keep in zip(labels, mix, strict=True) if keep]
            for lab in sorted(set(main)):
                m = np.array([lb == lab for lb in main])
                fams[lab] = {"count": int(m.sum()), "snr_improvement_db": float(imp[m].mean()),
                             "si_sdr_improvement_db": float(simp[m].mean())}
            entry["per_noise"] = fams
        per[nm] = entry
    result["outputs"] = per
    first = per[names[0]] if len(names) == 1 else None
    if first is not None:
        result["snr_improvement_db"] = first["snr_improvement_db"]
        result["si_sdr_improvement_db"] = first["si_sdr_improvement_db"]
    return result


def mse_change(before: float, after: float) -> str:
    """How the test MSE moved, in words: ``"1.76x lower"``, ``"1.06x higher"`` or ``"unchanged"``."""
    if not (before > 0 and after > 0) or not math.isfinite(before / after):
        return "ratio undefined"
    if math.isclose(before, after, rel_tol=5e-3):
        return "unchanged"
    return f"{before / after:.2f}x lower" if after < before else f"{after / before:.2f}x higher"
