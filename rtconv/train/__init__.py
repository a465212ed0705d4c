"""Offline training: data, tasks, losses, the loop and its report.

Modules (one room each)
    :mod:`~rtconv.train.speech`   clean speech synthesized with espeak-ng (cached), user folders;
    :mod:`~rtconv.train.noise`    noise families with disjoint train/test parameters;
    :mod:`~rtconv.train.tasks`    ``sines``, ``freqsep`` (classic, audio crossover), ``denoise`` datasets;
    :mod:`~rtconv.train.losses`   L1, MSE, multi-resolution STFT, SI-SDR;
    :mod:`~rtconv.train.trainer`  the loop: optimiser, schedule, clipping, early stop, resume, checkpoint;
    :mod:`~rtconv.train.report`   PNG report (matplotlib, imported lazily);
    :mod:`~rtconv.train.choices`  task, loss, optimizer, schedule and backend names and defaults
                                  (imports nothing: ``rtconv train --help`` reads it).

Nothing here is imported by ``import rtconv``; the live path never pays for it.
"""
