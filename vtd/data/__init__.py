"""Data sets for VTD: annotation formats, the clip index, splits, and the chunk loader.

```python
from vtd.data import DataConfig, build_index, make_splits, chunk_loader

config = DataConfig(sources=["data/objectattention", "data/videoattentiontarget"])
splits = make_splits(build_index(config, base_dir), config)
for chunk in chunk_loader(splits.train, batch_size=4, chunk_size=3, train=True, epoch=1):
    ...
```

Formats live in private modules (`_vat`, `_oa`) behind one reader interface (`_base`);
`targets` holds the published heatmap, head-channel and smoothing formulas.

Exports other than the configs and `DataError` are loaded on first use (see `vtd._lazy`):
a sweep file's `DataConfig` is read without importing torch.
"""

from typing import TYPE_CHECKING

from vtd._lazy import lazy_exports
from vtd.data.config import (
    AugmentationConfig,
    CrossValidation,
    DataConfig,
    HoldOut,
    SourceSpec,
    SplitSpec,
)
from vtd.data.errors import DataError

if TYPE_CHECKING:
    from vtd.data.index import Clip, build_index
    from vtd.data.loader import Chunk, ChunkLoader, LoaderOptions, chunk_loader
    from vtd.data.splits import Splits, load_splits, make_splits

__all__ = [
    "AugmentationConfig",
    "Chunk",
    "ChunkLoader",
    "Clip",
    "CrossValidation",
    "DataConfig",
    "DataError",
    "HoldOut",
    "LoaderOptions",
    "SourceSpec",
    "SplitSpec",
    "Splits",
    "build_index",
    "chunk_loader",
    "load_splits",
    "make_splits",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Clip": "vtd.data.index",
        "build_index": "vtd.data.index",
        "Chunk": "vtd.data.loader",
        "ChunkLoader": "vtd.data.loader",
        "LoaderOptions": "vtd.data.loader",
        "chunk_loader": "vtd.data.loader",
        "Splits": "vtd.data.splits",
        "load_splits": "vtd.data.splits",
        "make_splits": "vtd.data.splits",
    },
)
