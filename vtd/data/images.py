"""Image files: found by frame name whatever their extension, opened and decoded fast.

Annotation files name frames with an extension (VideoAttentionTarget: `00001234.jpg`) or
without (ObjectAttention: `000001`, stored as `.ppm`). `ImageFolder` lists a clip's folder
once and answers either spelling with the one image file of that name, whatever extension
PIL reads, so that data sets in different image formats mix in one split.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from PIL import Image, UnidentifiedImageError

from vtd.data.errors import DataError


@cache
def image_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) of the formats that PIL can open here."""
    registered = Image.registered_extensions()  # loads every plugin, filling Image.OPEN
    return frozenset(
        extension.lower()
        for extension, image_format in registered.items()
        if image_format in Image.OPEN
    )


class AmbiguousImageError(LookupError):
    """Several image files share the name that an annotation line gives."""


class ImageFolder:
    """The image files of one folder, listed once, looked up by file name or by stem."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._by_name: dict[str, Path] = {}
        self._by_stem: dict[str, list[Path]] = {}
        extensions = image_extensions()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            entries = []
        for entry in sorted(entries, key=lambda item: item.name):
            path = Path(entry.path)
            if path.suffix.lower() in extensions and entry.is_file():
                self._by_name[entry.name] = path
                self._by_stem.setdefault(path.stem, []).append(path)

    def __len__(self) -> int:
        return len(self._by_name)

    def find(self, name: str) -> Path | None:
        """The image file for a frame name with or without extension; None when absent.

        A name with an image extension is taken as written when that file exists, else by its
        stem (a `.jpg` listed, a `.png` on disk). Raises `AmbiguousImageError` when the stem
        matches several files, e.g. `0001.ppm` and `0001.png`.
        """
        if name in self._by_name:
            return self._by_name[name]
        pure = PurePosixPath(name)
        stem = pure.stem if pure.suffix.lower() in image_extensions() else pure.name
        candidates = self._by_stem.get(stem, [])
        if len(candidates) > 1:
            names = ", ".join(path.name for path in candidates)
            raise AmbiguousImageError(f"frame {name!r} matches several images: {names}")
        return candidates[0] if candidates else None


class ImageFolders:
    """`ImageFolder`s by path, each listed on first use (one per clip while indexing)."""

    def __init__(self) -> None:
        self._folders: dict[Path, ImageFolder] = {}

    def find(self, folder: Path, name: str) -> Path | None:
        """The image for frame `name` under `folder`; names may hold subfolders (`a/0001`)."""
        pure = PurePosixPath(name.replace("\\", "/"))
        directory = folder.joinpath(*pure.parts[:-1]) if len(pure.parts) > 1 else folder
        if directory not in self._folders:
            self._folders[directory] = ImageFolder(directory)
        return self._folders[directory].find(pure.name)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"cannot read image: {error}", path) from None


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image decoded from `path`, possibly at a reduced `scale` of its `size`."""

    image: Image.Image
    size: tuple[int, int]
    """(width, height) of the file, whatever scale it was decoded at."""
    scale: float
    """Decoded pixels per file pixel (1, 1/2, 1/4 or 1/8)."""


def open_rgb(path: Path, min_size: tuple[float, float] | None = None) -> DecodedImage:
    """Decode an image to RGB, a JPEG at a reduced scale when that still gives `min_size`.

    `min_size` (width, height) is the smallest full-image size at which every region the
    caller will resize still has at least its output resolution; JPEG's DCT scaling then
    decodes at 1/2, 1/4 or 1/8 of the size, several times faster than decoding it all.
    """
    try:
        image = Image.open(path)
        size = image.size
        scale = 1.0
        if min_size is not None and image.format == "JPEG":
            drafted = image.draft("RGB", (math.ceil(min_size[0]), math.ceil(min_size[1])))
            if drafted is not None:
                scale = drafted[1][2] / size[0]
        image.load()
        rgb = image if image.mode == "RGB" else image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"cannot decode image {path}: {error}") from None
    return DecodedImage(image=rgb, size=size, scale=scale)
