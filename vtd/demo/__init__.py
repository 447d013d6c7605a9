"""Synthetic demo data sets, in the ObjectAttention and VideoAttentionTarget layouts.

`generate` writes them (`generate_demo`) or reuses a cached copy (`ensure_demo`), from a
`DemoConfig`; `_scene` draws what a frame shows. A tool beside `vtd.data`: the data sets it
writes are read back by `vtd.data` like any other.
"""

from vtd.demo.generate import (
    DemoCacheError,
    DemoConfig,
    DemoDatasets,
    DemoLayout,
    demo_folder_name,
    ensure_demo,
    generate_demo,
)

__all__ = [
    "DemoCacheError",
    "DemoConfig",
    "DemoDatasets",
    "DemoLayout",
    "demo_folder_name",
    "ensure_demo",
    "generate_demo",
]
