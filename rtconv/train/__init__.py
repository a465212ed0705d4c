"""Offline training: data, tasks, losses, the loop and its report.

Modules (one room each)
    :mod:`~rtconv.train.speech`   clean speech synthesized with espeak-ng (cached), user folders;
    :mod:`~rtconv.train.noise`    noise families with disjoint train/test parameters;
    :mod:`~rtconv.train.tasks`    ``sines``, ``freqsep`` (classic, audio crossover), ``denoise``, ``classify``,
                                  ``vad``: the splits of a task by name (``make_task``);
    :mod:`~rtconv.train.datasets` their examples, generated on the fly, and ``materialize`` in workers;
    :mod:`~rtconv.train.losses`   L1, MSE, multi-resolution STFT, SI-SDR; :mod:`~rtconv.train.perceptual`
                                  the PESQ and STOI terms;
    :mod:`~rtconv.train.config`   a run's choices (TrainConfig), checked before any work; the device;
    :mod:`~rtconv.train.trainer`  the loop: optimiser, schedule, clipping, early stop, time budget;
    :mod:`~rtconv.train.state`    the checkpoint and its provenance, the resumable state beside it;
    :mod:`~rtconv.train.evaluate` test metrics per input-SNR bucket and noise family;
    :mod:`~rtconv.train.distributed` several processes under torchrun (DDP);
    :mod:`~rtconv.train.report`   PNG report (matplotlib, imported lazily);
    :mod:`~rtconv.train.choices`  task, loss, optimizer, schedule and backend names and defaults
                                  (imports nothing: ``rtconv train --help`` reads it).

Nothing here is imported by ``import rtconv``; the live path never pays for it.
"""
