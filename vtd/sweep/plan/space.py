"""The search space: `TrainConfig` field paths mapped to lists (grid, categorical) or ranges.

```yaml
search_space:
  batch_size: [2, 4, 8]                       # a list: grid values, or categorical choices
  initial_weights: [fresh, demo-pretrained]   # names or checkpoint paths
  lr: {low: 1.0e-5, high: 1.0e-3, log: true}  # a range: tpe / random only
  model.lstm_dropout: {low: 0.0, high: 0.5, step: 0.1}
```
Optuna parameter names are the field paths; values are what the file says (a weights name
stays a name), the resolved configuration is built by `apply_params` and validated per value
when the file is read, so a bad value fails before any trial runs.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from pydantic import BaseModel, ValidationError

from vtd.train.config import TrainConfig

# Fields the sweep owns: searched over they would break identity or output layout.
_NOT_SEARCHABLE = {
    "seed": "seeds come from `repeats` (seeds per configuration), not the search space",
    "output_dir": "is set by the sweep, per trial",
    "eval_cache_dir": "is set by the sweep, per study",
    "data_dir": "is set by the sweep file's location",
}
_RANGE_KEYS = {"low", "high", "log", "step"}
Kind = Literal["categorical", "int", "float"]


class SearchSpaceError(ValueError):
    """A bad search-space entry; `keys` locate it below `search_space`."""

    def __init__(self, keys: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.keys = tuple(keys)


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a list of choices or a numeric range."""

    name: str
    kind: Kind
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.kind == "categorical":
            return optuna.distributions.CategoricalDistribution(self.choices)
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            return optuna.distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return optuna.distributions.FloatDistribution(
            self.low, self.high, log=self.log, step=self.step
        )

    def to_json(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"name": self.name, "choices": list(self.choices)}
        return {
            "name": self.name,
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "step": self.step,
        }


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dimension.name for dimension in self.dimensions)

    def values_of(self, name: str) -> tuple[Any, ...]:
        """The listed values of a setting (empty for a range or an unsearched setting)."""
        for dimension in self.dimensions:
            if dimension.name == name:
                return dimension.choices
        return ()

    def is_config_path(self, path: str) -> bool:
        try:
            field_annotation(path)
        except KeyError:
            return False
        return True

    def grid_cells(self) -> list[dict[str, Any]]:
        """Every combination of the listed values, first dimension slowest, in file order."""
        assert all(dimension.kind == "categorical" for dimension in self.dimensions)
        product = itertools.product(*(dimension.choices for dimension in self.dimensions))
        return [dict(zip(self.names, values, strict=True)) for values in product]

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        return {dimension.name: dimension.distribution() for dimension in self.dimensions}

    def to_json(self) -> list[dict[str, Any]]:
        return [dimension.to_json() for dimension in self.dimensions]


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set `raw["model"]["lstm_dropout"]` for path `model.lstm_dropout`, making levels."""
    *parents, leaf = path.split(".")
    level = raw
    for part in parents:
        child = level.get(part)
        if isinstance(child, BaseModel):
            child = child.model_dump(exclude_unset=True)
        if not isinstance(child, dict):
            child = {}
        level[part] = child
        level = child
    level[leaf] = value


def get_path(raw: Mapping[str, Any], path: str) -> Any:
    level: Any = raw
    for part in path.split("."):
        level = level.get(part) if isinstance(level, Mapping) else None
    return level


def apply_params(base_raw: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The raw training fields with `params` set at their field paths (base left unchanged)."""
    raw = copy.deepcopy(dict(base_raw))
    for path, value in params.items():
        set_path(raw, path, value)
    return raw


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [model for argument in typing.get_args(annotation) for model in _models_in(argument)]
    return []


def field_annotation(path: str) -> Any:
    """The type of a `TrainConfig` field path; KeyError naming the first unknown part."""
    model: type[BaseModel] | None = TrainConfig
    annotation: Any = None
    parts = path.split(".")
    for depth, part in enumerate(parts):
        fields = model.model_fields if model is not None else {}
        if part not in fields:
            where = ".".join(parts[:depth])
            close = difflib.get_close_matches(part, list(fields), n=1)
            hint = f" (did you mean {'.'.join([*parts[:depth], close[0]])!r}?)" if close else ""
            what = f"setting {part!r} of {where}" if where else f"training setting {part!r}"
            raise KeyError(f"unknown {what}{hint}")
        annotation = fields[part].annotation
        models = _models_in(annotation)
        model = models[0] if len(models) == 1 else None
    return annotation


def _numeric_kind(annotation: Any) -> Kind | None:
    options = set(typing.get_args(annotation)) or {annotation}
    options.discard(type(None))
    if options == {int}:
        return "int"
    if options <= {int, float} and float in options:
        return "float"
    return None


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def parse_search_space(
    raw: Mapping[str, Any],
    *,
    sampler: str,
    base_raw: Mapping[str, Any],
    validate: Callable[[Mapping[str, Any]], TrainConfig],
    check_weights: Callable[[object], None],
) -> SearchSpace:
    """Check every entry against TrainConfig (each value validated in a full configuration)."""
    dimensions = []
    for name, spec in raw.items():
        if name in _NOT_SEARCHABLE:
            raise SearchSpaceError([name], _NOT_SEARCHABLE[name])
        try:
            annotation = field_annotation(name)
        except KeyError as error:
            raise SearchSpaceError([name], error.args[0]) from None
        if _models_in(annotation) and not _numeric_kind(annotation):
            raise SearchSpaceError(
                [name], "is a group of settings; search one setting inside it (e.g. model.variant)"
            )

        def checked(value: Any, keys: list[str | int], name: str = name) -> Any:
            if name == "initial_weights":
                try:
                    check_weights(value)
                except ValueError as error:
                    raise SearchSpaceError(keys, str(error)) from None
            try:
                config = validate(apply_params(base_raw, {name: value}))
            except ValidationError as error:
                first = error.errors()[0]
                raise SearchSpaceError(
                    keys, f"{first['msg'].removeprefix('Value error, ')} (got {value!r})"
                ) from None
            # YAML reads `1e-4` as a string: keep the value as the setting's own type.
            if name == "initial_weights":
                return value
            return get_path(config.model_dump(), name)

        if isinstance(spec, list):
            if not spec:
                raise SearchSpaceError([name], "an empty list gives no trial")
            if not all(_plain(value) for value in spec):
                raise SearchSpaceError(
                    [name], "list values must be numbers, strings, booleans or null"
                )
            choices = tuple(checked(value, [name, index]) for index, value in enumerate(spec))
            repeated = sorted({str(c) for c in choices if choices.count(c) > 1})
            if repeated:
                raise SearchSpaceError([name], f"repeated value {repeated[0]}")
            dimensions.append(Dimension(name=name, kind="categorical", choices=choices))
        elif isinstance(spec, dict):
            dimensions.append(_parse_range(name, spec, annotation, sampler, checked))
        else:
            raise SearchSpaceError(
                [name], "expected a list of values or a range {low, high, log, step}"
            )
    return SearchSpace(dimensions=tuple(dimensions))


def _parse_range(
    name: str,
    spec: dict[str, Any],
    annotation: Any,
    sampler: str,
    checked: Callable[[Any, list[str | int]], Any],
) -> Dimension:
    if sampler == "grid":
        raise SearchSpaceError([name], "a grid takes lists of values; ranges are for tpe / random")
    unknown = sorted(set(spec) - _RANGE_KEYS)
    if unknown:
        raise SearchSpaceError([name, unknown[0]], "unknown key; a range has low, high, log, step")
    if "low" not in spec or "high" not in spec:
        raise SearchSpaceError([name], "a range needs low and high")
    kind = _numeric_kind(annotation)
    if kind is None:
        raise SearchSpaceError([name], "only numeric settings take a range; give a list")
    low = checked(spec["low"], [name, "low"])
    high = checked(spec["high"], [name, "high"])
    log = spec.get("log", False)
    step = spec.get("step")
    if not isinstance(log, bool):
        raise SearchSpaceError([name, "log"], f"expected true or false, got {log!r}")
    if not low < high:
        raise SearchSpaceError([name], f"low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise SearchSpaceError([name, "low"], "a log range needs low > 0")
    if step is not None:
        if log:
            raise SearchSpaceError([name, "step"], "a log range takes no step")
        if not isinstance(step, int | float) or step <= 0 or (kind == "int" and step != int(step)):
            raise SearchSpaceError([name, "step"], f"expected a positive {kind}, got {step!r}")
        if kind == "float" and not math.isclose(
            round((high - low) / step) * step, high - low, rel_tol=1e-9
        ):
            raise SearchSpaceError([name, "step"], "high - low must be a multiple of step")
    return Dimension(name=name, kind=kind, low=low, high=high, log=log, step=step)
