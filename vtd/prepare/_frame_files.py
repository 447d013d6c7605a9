"""The image files of one folder of raw frames, in natural name order (`f_2` before `f_10`),
and the levels of folders above them."""

from __future__ import annotations

import re
from pathlib import Path

from vtd.data.errors import DataError
from vtd.data.images import image_extensions


def natural_key(path: Path) -> tuple[list[int | str], str]:
    parts = re.split(r"(\d+)", path.stem)
    return [int(part) if part.isdigit() else part.lower() for part in parts], path.name


def subfolders(path: Path) -> list[Path]:
    """The folders in `path` in name order, hidden ones (`.DS_Store`'s kin) left out."""
    return sorted(child for child in path.iterdir() if child.is_dir() and child.name[0] != ".")


def required_subfolders(path: Path, missing: str) -> list[Path]:
    """`subfolders(path)`, none an error that says `missing`: frames one level too high
    would otherwise be left out without a word."""
    folders = subfolders(path)
    if not folders:
        raise DataError(missing, path)
    return folders


def source_subfolders(source: Path, missing: str) -> list[Path]:
    """The top level of a source layout: `source` must be a folder with folders in it."""
    if not source.is_dir():
        raise DataError("source folder not found", source)
    return required_subfolders(source, missing)


def frame_files(folder: Path) -> list[Path]:
    """Every image file PIL reads in `folder`, in natural order; none, or a name twice, is an error.

    Zero-padded names (the lab's `00000000.ppm`, ...) sort as a plain sort would.
    """
    suffixes = image_extensions()
    frames = sorted(
        (path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in suffixes),
        key=natural_key,
    )
    by_stem: dict[str, Path] = {}
    for frame in frames:
        if frame.stem in by_stem:
            raise DataError(
                f"frame {frame.stem!r} listed twice: {by_stem[frame.stem].name} and {frame.name}",
                frame,
            )
        by_stem[frame.stem] = frame
    if not frames:
        raise DataError("no image files in this folder", folder)
    return frames
