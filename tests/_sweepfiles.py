"""Sweep files for tests and benchmarks, built from the sections most of them share.

`sweep_yaml` writes the text a person would: block sections, flow-style values. The sections
come in a fixed order (study, sampler, settings, data files, training, search space, faults,
then the demo data), so that line numbers in error messages stay where a test expects them.
Values are written as given: pass a float as a string ("1.0e-4") to keep its spelling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The small model for one epoch, on the CPU: what a trial of most tests trains.
SMALL_TRAINING: dict[str, Any] = {"model": {"variant": "small"}, "epochs": 1, "device": "cpu"}

# A sweep over data files at `data/objectattention` next to the sweep file.
FILE_DATA: dict[str, Any] = {"sources": "[data/objectattention]", "validation": {"groups": 1}}

# Four cells: the grid of the tests that queue a study but seldom train it.
SMALL_GRID: dict[str, Any] = {"batch_size": [2, 4], "chunk_size": [2, 3]}

# The demo data sets of a few frames each: seconds to generate and train on.
TINY_OBJECTATTENTION = {
    "train_shows": 2,
    "test_shows": 1,
    "clips_per_show": 1,
    "width": 96,
    "height": 72,
}
TINY_VIDEOATTENTIONTARGET = {
    "train_shows": 1,
    "test_shows": 1,
    "clips_per_show": 1,
    "width": 96,
    "height": 64,
}


def yaml_value(value: Any) -> str:
    """`value` as it stands after `key: ` on one line: mappings and lists in flow style."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {yaml_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[" + ", ".join(yaml_value(item) for item in value) + "]"
    return str(value)


def _section(name: str, entries: Mapping[str, Any]) -> str:
    return f"{name}:\n" + "".join(
        f"  {key}: {yaml_value(value)}\n" for key, value in entries.items()
    )


def _updated(base: Mapping[str, Any], changes: Mapping[str, Any] | None) -> dict[str, Any]:
    """`base` with `changes` applied; a change to None drops the key."""
    merged = {**base, **(changes or {})}
    return {key: value for key, value in merged.items() if value is not None}


def demo_yaml(
    seed: int = 1,
    *,
    frames: int = 8,
    objectattention: Mapping[str, Any] | None = None,
    videoattentiontarget: Mapping[str, Any] | None = None,
    demo_pretrained: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> str:
    """The `demo` (tiny data sets, changed by the keyword mappings), optional `demo_pretrained`
    and `data` sections: training on the demo's objectattention, one session held out."""
    demo = {
        "seed": seed,
        "min_frames": frames,
        "max_frames": frames,
        "objectattention": _updated(TINY_OBJECTATTENTION, objectattention),
        "videoattentiontarget": _updated(TINY_VIDEOATTENTIONTARGET, videoattentiontarget),
    }
    text = _section("demo", demo)
    if demo_pretrained is not None:
        text += f"demo_pretrained: {yaml_value(demo_pretrained)}\n"
    demo_data = {"sources": "[objectattention]", "validation": {"groups": 1}}
    return text + _section("data", _updated(demo_data, data))


def sweep_yaml(
    study: str,
    search_space: Mapping[str, Any],
    *,
    sampler: Any = "grid",
    training: Mapping[str, Any] | None = None,
    faults: Sequence[Mapping[str, Any]] = (),
    data: Mapping[str, Any] | None = None,
    demo: str | None = None,
    **settings: Any,
) -> str:
    """A sweep file's text: `study` over `search_space`, training `SMALL_TRAINING` changed by
    `training` (None drops a key); top-level `settings` (repeats, heartbeat, ...) in the order
    given. With `data` (a data section, e.g. FILE_DATA) it reads data files; without, the demo
    data of `demo` (`demo_yaml()` unless given)."""
    text = f"study: {study}\nsampler: {yaml_value(sampler)}\n"
    text += "".join(f"{key}: {yaml_value(value)}\n" for key, value in settings.items())
    if data is not None:
        text += _section("data", data)
    text += _section("training", _updated(SMALL_TRAINING, training))
    text += _section("search_space", search_space)
    if faults:
        text += "faults:\n" + "".join(f"  - {yaml_value(fault)}\n" for fault in faults)
    if data is None:
        text += demo_yaml() if demo is None else demo
    return text


def files_sweep_yaml(
    study: str,
    search_space: Mapping[str, Any],
    *,
    training: Mapping[str, Any] | None = None,
    **settings: Any,
) -> str:
    """`sweep_yaml` over the data files of FILE_DATA, the device left to its default."""
    training = {"device": None, **(training or {})}
    return sweep_yaml(study, search_space, data=FILE_DATA, training=training, **settings)


def write_sweep(folder: Path, text: str) -> Path:
    """`text` written as `folder/sweep.yaml` (the folder made if need be); its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.yaml"
    path.write_text(text)
    return path
