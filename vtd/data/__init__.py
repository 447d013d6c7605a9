"""Data sets for VTD: annotation formats, the clip index, splits, and the chunk loader.

```python
from vtd.data import DataConfig, build_index, make_splits, chunk_loader

config = DataConfig(sources=["data/objectattention", "data/videoattentiontarget"])
splits = make_splits(build_index(config, base_dir), config)
for chunk in chunk_loader(splits.train, batch_size=4, chunk_size=3, train=True, epoch=1):
    ...
```

Formats live in `formats` (one private module per format behind one reader interface);
`targets` holds the published heatmap, head-channel and smoothing formulas. This package is
what a training run needs; the tools that write data sets, `vtd.prepare` and `vtd.demo`, live
beside it.
"""

from vtd.data.config import (
    AugmentationConfig,
    CrossValidation,
    DataConfig,
    HoldOut,
    SourceSpec,
    SplitSpec,
)
from vtd.data.errors import DataError
from vtd.data.index import Clip, build_index
from vtd.data.loader import Chunk, ChunkLoader, chunk_loader
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
    "SourceSpec",
    "SplitSpec",
    "Splits",
    "build_index",
    "chunk_loader",
    "load_splits",
    "make_splits",
]
