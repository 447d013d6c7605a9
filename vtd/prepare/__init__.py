"""`vtd-sweep prepare`: the lab's recordings to ObjectAttention annotation files.

`convert` reads a folder of recordings (frames, one labelImg VOC XML per folder read by
`_voc`, optionally OpenPose BODY_25 JSON per frame read by `_openpose`) and writes the
ObjectAttention layout that `vtd.data` reads. A tool beside `vtd.data`, not part of a training
run; it uses `vtd.data`'s error type, image helpers and the ObjectAttention columns.
"""

from vtd.prepare.convert import prepare, read_targets
from vtd.prepare.options import PreparedClip, PrepareOptions, PrepareReport

__all__ = ["PrepareOptions", "PrepareReport", "PreparedClip", "prepare", "read_targets"]
