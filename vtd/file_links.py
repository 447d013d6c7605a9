"""One file at a second path without a second copy of its bytes, where the file system
allows it: checkpoints of hundreds of megabytes (the full model's is 400 MB) kept as `best.pt`
beside `last.pt`, and among a trial's MLflow artifacts.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path


def link_or_copy(source: Path, target: Path) -> bool:
    """`source` also at `target`, atomically (under a temporary name, then renamed over what
    `target` held): a hard link, or a copy where no link can be made (another file system, or
    one without hard links). Returns whether it is a link.

    A link shares the file: it stays as it is now only if `source` is never written in
    place, as a checkpoint never is (`save_checkpoint` renames a new file over the old one).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            temporary.hardlink_to(source)
            linked = True
        except OSError:
            shutil.copy2(source, temporary)
            linked = False
        temporary.replace(target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return linked
