"""The annotation formats `vtd.data` reads, behind one reader interface.

`_base` is the interface (`AnnotationReader`: does a first line belong to my format, parse a
line into an `AnnotationRow`); `_oa` (ObjectAttention, with a header) and `_vat`
(VideoAttentionTarget, without) are one module per format; `_registry` lists the known readers
and decides a file's format from its first line (`file_format`). The tools that write these files
(`vtd.prepare`, `vtd.demo`) take the column names from here.
"""

from vtd.data.formats._base import AnnotationReader, AnnotationRow, RowError
from vtd.data.formats._oa import COLUMNS as OA_COLUMNS
from vtd.data.formats._oa import ObjectAttentionReader
from vtd.data.formats._registry import FORMAT_NAMES, READERS, FileFormat, file_format
from vtd.data.formats._vat import COLUMNS as VAT_COLUMNS
from vtd.data.formats._vat import VideoAttentionTargetReader

__all__ = [
    "FORMAT_NAMES",
    "OA_COLUMNS",
    "READERS",
    "VAT_COLUMNS",
    "AnnotationReader",
    "AnnotationRow",
    "ObjectAttentionReader",
    "RowError",
    "FileFormat",
    "VideoAttentionTargetReader",
    "file_format",
]
