"""Which files a list of paths means: folders expanded to the audio in them, rtconv's own outputs left out."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..audio import PathLike, _audio_extensions, named_as_output, written_by_rtconv


@dataclass
class Found:
    """What :func:`audio_files` found."""

    #: ``(file, sub-folder)``: each audio file with its folder relative to the
    #: folder it was found in (``Path(".")`` for files given by name or found
    #: directly inside a folder given), so outputs can mirror the tree.
    files: list[tuple[Path, Path]] = field(default_factory=list)
    #: Files skipped because rtconv wrote them (their ``software`` tag says so).
    written: list[Path] = field(default_factory=list)
    #: Files skipped because they are named as rtconv names an output, beside their input, in a format that
    #: keeps no tag to tell (AU, W64...: :func:`rtconv.audio.named_as_output`).
    named: list[Path] = field(default_factory=list)
    #: Sub-folders not entered (without ``recursive``).
    folders: list[Path] = field(default_factory=list)


def _is_audio_name(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix[1:].lower() in _audio_extensions()


def audio_files(paths: Iterable[PathLike], recursive: bool = False, exclude: Iterable[PathLike] = ()) -> Found:
    """Expand folders to the audio files in them (sorted); keep files as given.

    Files found in folders that rtconv itself wrote (their ``software`` tag
    says so, or, in a format without tags, their name beside their input:
    ``x-denoised.au`` next to ``x.au``) are skipped, so processing a folder
    twice does not process its own outputs; files named explicitly are
    always kept.  With
    ``recursive``, sub-folders are searched too (hidden ones, symbolic links
    to folders and the ``exclude`` folders, say the output folder, are not
    entered); without it they are counted in :attr:`Found.folders`.
    """
    found = Found()
    skip = set()
    for e in exclude:
        with contextlib.suppress(OSError):
            skip.add(Path(e).resolve())

    def enters(d: Path) -> bool:
        return not d.name.startswith(".") and not d.is_symlink() and d.resolve() not in skip

    for root in map(Path, paths):
        if not root.is_dir():
            found.files.append((root, Path(".")))
            continue
        for folder, dirs, names in os.walk(root):
            folder = Path(folder)
            dirs[:] = sorted(d for d in dirs if enters(folder / d))
            if not recursive:
                found.folders.extend(folder / d for d in dirs)
                dirs[:] = []
            here = set(names)
            for name in sorted(names):
                q = folder / name
                if _is_audio_name(name) and q.is_file():
                    if written_by_rtconv(q):
                        found.written.append(q)
                    elif named_as_output(q, here):
                        found.named.append(q)
                    else:
                        found.files.append((q, folder.relative_to(root)))
    return found
