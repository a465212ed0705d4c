"""``rtconv bench train``: training speed of the lab recipe on this machine.

``--denoiser``: instead, one training step of the shipped denoiser (its architecture and
loss, 4-second 48 kHz clips, Adam) on the whole batch and on the same batch in pieces of
each ``--micro-batch`` (:class:`rtconv.train.config.TrainConfig`), the configurations
taking turns so that the machine's load falls on all of them alike; clips per second and
the speed-up over the whole batch.  The clips are random noise: the cost does not depend
on what they hold.

Measures, side by side in one run, examples (one-second 32 kHz clips) per
second for: a full SGD training step of the lab model (MimoCNN taps 40,40,
features 1,5,1, tanh, L1, lr 0.5, batch 32), the forward pass alone
(evaluation), and mixing examples on the fly (speech + noise).  Medians over
``--repeats`` batches; the machine is shared, so compare ratios, not
absolute numbers, across runs.
"""

from __future__ import annotations

import statistics
import sys
import time

from ..cli.common import positive_int
from ..errors import ConfigError

HELP = "examples per second for the lab denoise recipe (train step, forward, data)"

#: The loss ``--denoiser`` times by default (the one the README's figures were measured with)
DENOISER_LOSS = "si_sdr + 10*sc + 5*cmrs"
_RATE = 48000  # the shipped denoiser's


def configure(parser) -> None:
    parser.add_argument("--repeats", type=positive_int, default=8, help="batches timed (default: %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, help="(default: 32; with --denoiser 64)")
    parser.add_argument("--threads", type=positive_int, action="append",
                        help="torch thread counts to compare (repeatable; default: 1 and 2)")
    parser.add_argument("--sample-rate", type=positive_int, default=32000, help="(default: %(default)s)")
    parser.add_argument("--cache-dir", help="speech cache (default: ~/.cache/rtconv)")
    parser.add_argument("--denoiser", action="store_true",
                        help="time the shipped denoiser's training step, whole and in pieces (--micro-batch)")
    parser.add_argument("--micro-batch", type=positive_int, action="append", metavar="N",
                        help="with --denoiser: piece sizes to compare with the whole batch (repeatable; "
                             "default: 8 and 16)")
    parser.add_argument("--seconds", type=float, default=4.0, help="with --denoiser: clip length (default: %(default)s)")
    parser.add_argument("--loss", default=DENOISER_LOSS, metavar="LOSS",
                        help="with --denoiser: the loss of the step (default: %(default)r)")
    parser.add_argument("--terms", action="store_true",
                        help="with --denoiser: time each term of --loss alone instead (its forward and backward "
                             "on the model's output), beside the model's own forward and backward")


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up: allocations, thread pool start
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def run(args) -> int:
    if (args.terms or args.loss != DENOISER_LOSS) and not args.denoiser:
        print("rtconv bench train: --loss and --terms time the shipped denoiser; add --denoiser.", file=sys.stderr)
        return 2
    if args.denoiser:
        try:
            return _terms(args) if args.terms else _denoiser(args)
        except ConfigError as e:
            print(f"rtconv bench train: {e}", file=sys.stderr)
            return 2
    import torch

    from ..models import MimoCNN
    from ..train import losses, tasks

    sr, bs = args.sample_rate, args.batch_size or 32
    td = tasks.make_task("denoise", sample_rate=sr, seconds=1.0, utterances=40,
                         train_examples=bs, val_examples=1, test_examples=1, cache_dir=args.cache_dir)
    data = tasks.materialize(td.train)
    x, y = data.tensors
    model = MimoCNN(taps=[40, 40], features=[1, 5, 1], activation="tanh", bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = losses.get_loss("l1")
    w = model.receptive_field - 1

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x)[..., w:], y[..., w:])
        loss.backward()
        opt.step()

    def forward():
        with torch.no_grad():
            model(x)

    def mix():
        for i in range(bs):
            td.train[i]

    old = torch.get_num_threads()
    rows = []
    for threads in args.threads or [1, 2]:
        torch.set_num_threads(threads)
        for name, fn in (("train step (fwd+bwd+SGD)", step), ("forward only", forward),
                         ("mix examples on the fly", mix)):
            times = _time(fn, args.repeats)
            med = statistics.median(times)
            rows.append((threads, name, bs / med, bs / min(times), med * 1e3))
    torch.set_num_threads(old)
    print(f"lab recipe at {sr} Hz, 1 s clips, batch {bs}, {args.repeats} batches each, "
          f"torch {torch.__version__}")
    print(f"{'threads':>7}  {'what':<26} {'ex/s (median)':>14} {'ex/s (best)':>12} "
          f"{'ms/batch':>9} {'x real time':>11}")
    for threads, name, med, best, ms in rows:
        print(f"{threads:>7}  {name:<26} {med:>14.1f} {best:>12.1f} {ms:>9.1f} {med:>11.1f}")
    step1 = [r for r in rows if r[1].startswith("train")]
    if len(step1) > 1:
        print(f"train-step speed-up {step1[-1][0]} vs {step1[0][0]} threads: {step1[-1][2] / step1[0][2]:.2f}x")
    fwd = {r[0]: r[2] for r in rows if r[1] == "forward only"}
    for threads, name, med, *_ in rows:
        if name.startswith("train"):
            print(f"{threads} thread(s): a training step costs {fwd[threads] / med:.1f}x a forward pass; "
                  f"one lab epoch of 512 clips ~ {512 / med:.1f} s, 20 epochs ~ {20 * 512 / med / 60:.1f} min")
    return 0


def _shipped_batch(args, batch: int):
    """The shipped denoiser (in training mode), its loss trim, and a batch of ``batch`` random-noise clips of
    ``--seconds`` at 48 kHz with random targets (the cost does not depend on what they hold)."""
    import torch

    from ..checkpoint import load, resolve
    from ..train.evaluate import _trim

    model = load(resolve(None))
    model.train()
    gen = torch.Generator().manual_seed(0)
    n = int(round(args.seconds * _RATE))
    x = 0.1 * torch.randn(batch, 1, n, generator=gen)
    y = 0.1 * torch.randn(batch, 1, n, generator=gen)
    return model, _trim(model), x, y


def _take_turns(fns: dict, repeats: int) -> dict:
    """The median seconds of each of ``fns`` over ``repeats`` turns in which every one runs once (after one
    turn that warms up), so that the machine's load falls on all of them alike."""
    times = {k: [] for k in fns}
    for turn in range(repeats + 1):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            if turn:
                times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def _denoiser(args) -> int:
    import torch

    from ..train import losses
    from ..train.trainer import TrainConfig, _step

    bs = args.batch_size or 64
    model, trim, x, y = _shipped_batch(args, bs)
    loss_fn = losses.get_loss(args.loss, _RATE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-12)  # the weights barely move: every turn costs the same
    sizes = [None] + sorted(set(m for m in (args.micro_batch or [8, 16]) if m < bs))
    old = torch.get_num_threads()
    print(f"shipped denoiser ({model.parameter_count()} parameters), loss {args.loss}, Adam, batch {bs} "
          f"of {args.seconds:g} s clips at {_RATE} Hz, {args.repeats} turns each, torch {torch.__version__}")
    print(f"{'threads':>7}  {'pieces of':<10} {'clips/s (median)':>16} {'s/step':>8} {'speed-up':>9}")
    for threads in args.threads or [1, 2]:
        torch.set_num_threads(threads)
        cfgs = {m: TrainConfig(loss=args.loss, micro_batch=m) for m in sizes}
        med = _take_turns({m: (lambda m=m: _step(model, x, y, loss_fn, opt, cfgs[m], trim)) for m in sizes},
                          args.repeats)
        for m in sizes:
            print(f"{threads:>7}  {'whole' if m is None else m:<10} {bs / med[m]:>16.2f} {med[m]:>8.2f} "
                  f"{med[None] / med[m]:>8.2f}x")
    torch.set_num_threads(old)
    return 0


def _terms(args) -> int:
    """Each term of ``--loss`` alone, forward and backward on the shipped denoiser's output (computed once,
    the model not in the timing), and the model's own forward and backward (a plain sum as its loss): the
    configurations take turns (:func:`_take_turns`)."""
    import torch

    from ..train import losses
    from ..train.evaluate import _cut

    bs = args.batch_size or 16
    loss = losses.get_loss(args.loss, _RATE)
    parts = getattr(loss, "parts", None) or ((1.0, args.loss.strip(), loss),)
    model, trim, x, y = _shipped_batch(args, bs)
    with torch.no_grad():
        out = _cut(model(x), trim)
    xc, yc = _cut(x, trim), _cut(y, trim)

    def model_step():
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()

    def term_step(f):
        def go():
            e = out.detach().requires_grad_()
            losses.apply(f, e, yc, xc).backward()
        return go

    rows = {"model (forward + backward)": model_step, **{t: term_step(f) for _, t, f in parts}}
    for fn in rows.values():  # a term that cannot take these clips says so before the table begins
        fn()
    old = torch.get_num_threads()
    print(f"loss {args.loss!r}: each term alone (forward + backward on the output of the shipped denoiser, "
          f"{model.parameter_count()} parameters), batch {bs} of {args.seconds:g} s clips at {_RATE} Hz, "
          f"{args.repeats} turns each, torch {torch.__version__}")
    print(f"{'threads':>7}  {'what':<28} {'s/step (median)':>15} {'x the model':>11}")
    for threads in args.threads or [1, 2]:
        torch.set_num_threads(threads)
        med = _take_turns(rows, args.repeats)
        base = med["model (forward + backward)"]
        for name in rows:
            print(f"{threads:>7}  {name:<28} {med[name]:>15.3f} {med[name] / base:>10.2f}x")
    torch.set_num_threads(old)
    return 0
