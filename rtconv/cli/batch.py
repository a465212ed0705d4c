"""How ``rtconv process`` works through its files: the batch (who processes which file, results, the progress bar),
the worker processes that share it when the files are worth them, and the stop signals that end it cleanly."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import RtconvError

# rtconv.cli.main turns these into KeyboardInterrupt from the start; process.run() then installs its
# own handlers that remember which signal it was, so the exit status can be 128 + its number.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def plan_workers(jobs: int, files: int, threads: int | None = None, cores: int | None = None) -> tuple[int, int]:
    """``(worker processes, torch threads per process)`` for ``files`` files and ``--jobs jobs``.

    This process works too, so ``jobs`` files at a time take ``jobs - 1``
    workers; never more processes than files or CPU cores (0 workers: no
    pool at all, e.g. for one file).  Each process gets ``threads`` torch
    threads (default 1), cut down so that ``processes * threads <= cores``:
    threads beyond that wait on each other.
    """
    cores = cores or cpu_cores()
    procs = max(1, min(jobs, files, cores))
    threads = max(1, min(threads or 1, cores // procs))
    return procs - 1, threads


@dataclass
class _Job:
    index: int
    input: Path
    output: Path
    seconds: float  # audio length, for the progress bar (0 when the header is unreadable); the reader's once known
    rate: int = 0  # the header's sample rate (0 when unreadable)


def _audio_s(job: _Job, frames: int, kw: dict) -> float:
    """Seconds of ``job``'s audio in ``frames`` of :func:`rtconv.files.process_file`'s progress count (which counts
    both passes of --both-directions)."""
    return frames / job.rate / (2 if kw["both_directions"] else 1)


class _Stop(KeyboardInterrupt):
    """A stop signal arrived (Ctrl-C, SIGTERM, SIGHUP); ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Cancelled(Exception):
    """Raised from a worker's progress callback: the batch is being stopped."""


class _BatchError(RtconvError, RuntimeError):
    """An error that ends the whole batch, not one file: a worker died or cannot start."""


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class _Console:
    """Summary lines and notes that do not tear the progress bar, and never fail.

    After SIGHUP the terminal is gone and writing to it raises; what was to
    be said is then lost, while the files are still cleaned up.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def say(self, line: str, err: bool = False) -> None:
        f = sys.stderr if err else sys.stdout
        try:
            if self.bar is not None:
                self.bar.write(line, file=f)
            else:
                print(line, file=f, flush=True)
        except (OSError, ValueError):  # a closed terminal or stream
            pass

    def note(self, text: str) -> None:
        if not self.quiet:
            self.say(f"rtconv process: note: {text}", err=True)


# --- the worker processes -----------------------------------------------------------
#
# Workers are started once, load the model once and take files from a shared queue until
# told to stop; this process processes files too.  Starting a worker costs what starting
# rtconv costs (torch import, model load: _WORKER_START_S), so workers are started only
# when the files nobody has started yet would take longer than that at the speed measured
# here so far, and a file goes to a worker only once the worker is ready: a short batch
# finishes here without waiting for workers, and workers still starting when it ends are
# ended with it.
# Results come back as one tuple per file; the audio seconds done so far per file are in
# shared memory, for the progress bar.  A worker holds no file except the one it is
# processing, which it drops at its next chunk when the batch stops (the stop event) or
# when it gets a stop signal itself (Ctrl-C and a closed terminal reach the whole
# process group).

_WORKER: dict = {"signalled": False}
#: Seconds a fresh worker takes to import torch and load a model (1.2-2.5 s measured on a
#: 2-core x86 machine); files that would take less than this are not worth a worker.
_WORKER_START_S = 2.0
#: Seconds of processing here before the speed measured is trusted for that decision.
_MEASURE_S = 0.3


def _worker_signal(signum, frame) -> None:
    _WORKER["signalled"] = True


def _switch(model, atten_lim: float | None, linked: bool) -> None:
    """The model switches of the command line, set on a loaded model (refused in one sentence)."""
    if atten_lim is not None:
        from ..denoiser import set_attenuation_limit

        set_attenuation_limit(model, atten_lim)
    if linked:
        from ..denoiser import set_linked

        set_linked(model, True)


def _worker_main(model_path: str, switches: tuple, threads: int, kw: dict,
                 tasks, results, done, stop) -> None:
    import logging

    for s in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(s, _worker_signal)
    logging.disable(logging.WARNING)  # loading notes: this process's parent has said them once
    try:
        import torch

        from ..checkpoint import load

        torch.set_num_threads(threads)
        model = load(model_path)
        _switch(model, *switches)
    except Exception as e:  # the parent loaded the same file, so this is rare; it reports it
        results.put(("failed", f"{type(e).__name__}: {e}"))
        return
    _WORKER.update(model=model, done=done, stop=stop)
    results.put(("ready", None))
    while True:
        job = tasks.get()
        if job is None:
            return
        results.put(("done", _work(job, kw)))


def _work(job: _Job, kw: dict) -> tuple[int, str | None, str | None, list[str], float]:
    """Process one file in a worker: ``(index, summary line, error, (warnings, notes), audio seconds)``.

    A file dropped because the batch stops has neither a line nor an error.
    """
    from ..files import process_file

    w = _WORKER
    if w["stop"].is_set() or w["signalled"]:
        return job.index, None, None, [], 0.0

    def progress(done: int, total: int) -> None:
        if w["stop"].is_set() or w["signalled"]:
            raise _Cancelled
        if job.rate and total:  # the reader's length; the parent's bar learns it from the result
            job.seconds = _audio_s(job, total, kw)
        w["done"][job.index] = job.seconds * done / total if total else 0.0

    try:
        s = process_file(job.input, job.output, w["model"], progress=progress, **kw)
    except _Cancelled:
        return job.index, None, None, [], 0.0
    except RtconvError as e:
        return job.index, None, str(e), [], 0.0
    except Exception as e:  # a bug: one line for this file, the worker carries on
        return job.index, None, f"{job.input.name}: unexpected {type(e).__name__}: {e}", [], 0.0
    return job.index, s.line(), None, (s.warnings, s.notes), s.duration_s


class _Workers:
    """``n`` worker processes fed one file at a time (see the comment above)."""

    def __init__(self, n: int, model_path: str, switches: tuple, threads: int, kw: dict,
                 files: int) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # forking a process that already ran torch threads can deadlock
        self.tasks = ctx.SimpleQueue()
        self.results = ctx.Queue()
        self.done = ctx.Array("d", files, lock=False)  # audio seconds done per file
        self.stop = ctx.Event()
        self.free = 0  # ready workers without a file
        self.busy = 0  # files handed out and not reported yet
        self.procs = [ctx.Process(target=_worker_main, daemon=True, name=f"rtconv-process-{i + 1}",
                                  args=(model_path, switches, threads, kw, self.tasks, self.results,
                                        self.done, self.stop)) for i in range(n)]
        for p in self.procs:
            p.start()

    def give(self, job: _Job) -> None:
        self.tasks.put(job)
        self.free -= 1
        self.busy += 1

    def poll(self, timeout: float = 0.0) -> list[tuple]:
        """Results that arrived (waiting up to ``timeout`` s for the first)."""
        import queue

        out = []
        while True:
            try:
                kind, value = self.results.get(timeout=timeout) if timeout else self.results.get_nowait()
            except queue.Empty:
                break
            timeout = 0.0
            if kind == "failed":
                raise _BatchError(f"a worker process could not load the model ({value}); run with --jobs 1.")
            self.free += 1
            if kind == "done":
                self.busy -= 1
                out.append(value)
        if not out and any(p.exitcode is not None for p in self.procs):
            raise _BatchError(
                f"a worker process died (killed, or out of memory?) with {self.busy} file(s) in hand; "
                "run the same command with --skip-existing to finish the batch."
            )
        return out

    def close(self, stopping: bool, deadline_s: float = 60.0) -> list[tuple]:
        """End the workers; when ``stopping``, those with a file drop it first.  Returns late results."""
        late = []
        if stopping:
            self.stop.set()
            end = time.monotonic() + deadline_s
            try:
                while self.busy and time.monotonic() < end:
                    late += self.poll(timeout=0.2)
            except Exception:  # a worker died: nothing more will come
                pass
        for p in self.procs:  # none holds a file now: idle, or still starting
            p.kill()
        for p in self.procs:
            p.join()
        return late


class _Batch:
    """The files of one run: who processes which, the results and the progress bar."""

    def __init__(self, jobs: list[_Job], console: _Console) -> None:
        self.jobs = jobs
        self.console = console
        self.finished = self.failed = 0
        self.audio_s = 0.0
        self.here_s = 0.0  # audio seconds done by this process
        self.bar = None
        self.workers: _Workers | None = None
        self.spawn = None  # () -> _Workers, until the workers are started or found not worth it
        self.t0 = time.monotonic()

    def report(self, result: tuple, by_worker: bool = False) -> None:
        index, line, error, warnings, seconds = result
        job = self.jobs[index]
        if line is not None:  # what was read, which a file cut short or ended early holds less of than its header
            self._resize(job, seconds)
        if by_worker:
            self.workers.done[index] = job.seconds
        if error is not None:
            self.failed += 1
            self.console.say(f"rtconv process: error: {error}", err=True)
            return
        if line is None:  # dropped: the batch is stopping
            return
        self.finished += 1
        self.audio_s += seconds
        warnings, notes = warnings
        for w in warnings:
            self.console.say(f"rtconv process: warning: {job.input.name}: {w}", err=True)
        if not self.console.quiet:
            self.console.say(line)
            for n in notes:  # after the file's line: how it was done, nothing lost
                self.console.say(f"rtconv process: note: {job.input.name}: {n}", err=True)

    def show_progress(self) -> None:
        from ..files import audio_progress_bar

        total = sum(j.seconds for j in self.jobs)
        desc = self.jobs[0].input.name if len(self.jobs) == 1 else f"{len(self.jobs)} files"
        self.bar = self.console.bar = audio_progress_bar(total, desc)

    def _resize(self, job: _Job, seconds: float) -> None:
        """Count ``job`` as ``seconds`` of audio from now on: the plan took its length from the header, which a
        FLAC or MP3 cut short overstates, and the bar's total and speed must be the audio there is, ending at 100 %."""
        if seconds == job.seconds:
            return
        if self.bar is not None:
            self.bar.total = max(0.0, self.bar.total + seconds - job.seconds)
        job.seconds = seconds

    def close(self) -> None:
        if self.bar is not None:
            try:
                self.bar.close()
            except (OSError, ValueError):
                pass
            self.bar = self.console.bar = None

    def _worth_workers(self, todo) -> bool:
        """Whether the files not started yet, at this process's speed so far, outlast a worker's start."""
        elapsed = time.monotonic() - self.t0
        if elapsed < _MEASURE_S:
            return False
        left = sum(j.seconds for j in todo)
        return self.here_s <= 0 or left * elapsed / self.here_s > _WORKER_START_S

    def _pump(self, todo) -> None:
        """Start workers when worth it, collect their results, give ready ones the next files, move the bar."""
        if self.spawn is not None and todo and self._worth_workers(todo):
            self.workers, self.spawn = self.spawn(), None
        w = self.workers
        if w is not None:
            for r in w.poll():
                self.report(r, by_worker=True)
            while w.free > 0 and todo:
                w.give(todo.popleft())
        if self.bar is not None:
            try:
                self.bar.update(self.here_s + (sum(w.done) if w else 0.0) - self.bar.n)
            except (OSError, ValueError):  # the terminal is gone
                self.bar.disable = True

    def run(self, model, kw: dict, workers: int, model_path: str, switches: tuple) -> None:
        from collections import deque

        from ..files import process_file

        if workers:
            # longest first: the last files to start are short ones, so the processes end together
            todo = deque(sorted(self.jobs, key=lambda j: -j.seconds))
            self.spawn = lambda: _Workers(workers, model_path, switches, kw["threads"], kw, len(self.jobs))
        else:
            todo = deque(self.jobs)
        self.t0 = time.monotonic()
        stopping = True
        try:
            while True:
                self._pump(todo)
                if not todo:
                    break
                job = todo.popleft()
                base, last = self.here_s, [0.0]

                def progress(done: int, total: int, job=job, base=base) -> None:
                    if job.rate and total:  # the reader's length, known from the first chunk on
                        self._resize(job, _audio_s(job, total, kw))
                    self.here_s = base + (job.seconds * done / total if total else 0.0)
                    now = time.monotonic()
                    if now - last[0] >= 0.1:
                        last[0] = now
                        self._pump(todo)

                try:
                    s = process_file(job.input, job.output, model, progress=progress, **kw)
                except RtconvError as e:
                    if isinstance(e, _BatchError):  # from _pump: not this file's error
                        raise
                    self.report((job.index, None, str(e), [], 0.0))
                else:
                    self.report((job.index, s.line(), None, (s.warnings, s.notes), s.duration_s))
                self.here_s = base + job.seconds
            while self.workers is not None and self.workers.busy:
                for r in self.workers.poll(timeout=0.2):
                    self.report(r, by_worker=True)
                self._pump(todo)
            stopping = False
        finally:
            if self.workers is not None:
                if stopping:  # a signal or an error: let the workers' clean-up finish undisturbed
                    _catch((signal.SIGINT, *STOP_SIGNALS), signal.SIG_IGN)
                for r in self.workers.close(stopping):
                    self.report(r, by_worker=True)


def _raise_stop(signum, frame) -> None:
    raise _Stop(signum)


def _catch(signums, handler=_raise_stop) -> dict:
    """Install ``handler`` for ``signums`` (main thread only); return the handlers it replaced."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in signums}


def _restore(old: dict) -> None:
    for s, h in old.items():
        signal.signal(s, h)
