"""The sweep's data, indexed and split once, before any trial: `check_sweep_data`.

Every data configuration a trial can get is checked: the file's `data` section, and each
combination of the searched `data.*` settings (lists, and integer ranges such as
`data.cross_validation.fold`; float ranges, e.g. `data.eval_head_expansion`, choose no clips).
Sources are indexed once per distinct source set; every variant's splits (lists, hold-outs,
folds) are then made from that index. A data error is a `DataError` naming the file and line,
or, for a selection, the variant it happened in.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from vtd.data.config import DataConfig
from vtd.data.errors import DataError
from vtd.data.index import DataIndex, index_data
from vtd.data.splits import Splits, make_splits
from vtd.demo.generate import ensure_demo
from vtd.sweep.plan.config import Sweep
from vtd.sweep.plan.space import Dimension, apply_params

DATA_PREFIX = "data."
# An integer range over a data setting longer than this is not enumerated (only its base).
_MAX_INT_VALUES = 1000


@dataclass(frozen=True)
class DataVariant:
    """One data configuration that trials can get; `label` names its searched values."""

    label: str
    config: DataConfig


@dataclass(frozen=True)
class CheckedData:
    """A variant, the index of its sources, and its splits."""

    variant: DataVariant
    index: DataIndex
    splits: Splits


def _values(dimension: Dimension) -> tuple[Any, ...] | None:
    if dimension.kind == "categorical":
        return dimension.choices
    if dimension.kind == "int" and dimension.low is not None and dimension.high is not None:
        step = int(dimension.step or 1)
        values = range(int(dimension.low), int(dimension.high) + 1, step)
        if len(values) <= _MAX_INT_VALUES:
            return tuple(values)
    return None


def data_variants(sweep: Sweep) -> list[DataVariant]:
    """The distinct data configurations of the sweep's trials, in grid order."""
    searched = [
        (dimension.name, values)
        for dimension in sweep.space.dimensions
        if dimension.name.startswith(DATA_PREFIX) and (values := _values(dimension)) is not None
    ]
    if not searched:
        return [DataVariant("", sweep.base.data)]
    # Every trial gets one value of each searched setting: the file's own value alone is none.
    variants: dict[str, DataVariant] = {}
    names = [name for name, _ in searched]
    for combination in itertools.product(*(values for _, values in searched)):
        params = dict(zip(names, combination, strict=True))
        raw = apply_params(sweep.base_raw, params)
        label = ", ".join(f"{name}={value}" for name, value in params.items())
        try:
            config = DataConfig.model_validate(raw["data"])
        except ValidationError as error:
            first = error.errors()[0]
            raise DataError(f"{label}: {first['msg']}") from None
        variants.setdefault(config.model_dump_json(), DataVariant(label, config))
    return list(variants.values())


def _index_key(config: DataConfig) -> str:
    fields = {"sources", "on_bad_frame", "smoothing_window"}
    return config.model_dump_json(include=fields)


def check_sweep_data(sweep: Sweep) -> list[CheckedData]:
    """Index and split every data variant of the sweep; raises `DataError` at the first
    problem (the demo data, when the file asks for it, is generated first)."""
    if sweep.file.demo is not None:
        ensure_demo(sweep.cache_dir, sweep.file.demo)
    base_dir = sweep.base.data_dir
    indexes: dict[str, DataIndex] = {}
    checked = []
    for variant in data_variants(sweep):
        key = _index_key(variant.config)
        if key not in indexes:
            indexes[key] = index_data(variant.config, base_dir)
        try:
            splits = make_splits(indexes[key].clips, variant.config)
        except DataError as error:
            if error.path is not None or not variant.label:
                raise
            raise DataError(f"{variant.label}: {error.reason}") from None
        checked.append(CheckedData(variant, indexes[key], splits))
    return checked
