"""`DataError`: the one error type that bad data sets raise, naming the file and line at fault."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input in a data set: a malformed annotation line, a missing image, a bad split.

    `path` and `line` (1-based) say where; the message starts with `path:line:` so that an
    editor or a terminal can jump there. Raised once, at the first problem, with no chained
    traceback from the library that tripped over the input.
    """

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        self.reason = message
        self.path = Path(path) if path is not None else None
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        if self.path is None:
            return self.reason
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: {self.reason}"

    def __reduce__(self) -> tuple[type[DataError], tuple[str, Path | None, int | None]]:
        # Worker processes send errors back pickled; keep path and line through the trip.
        return (type(self), (self.reason, self.path, self.line))
