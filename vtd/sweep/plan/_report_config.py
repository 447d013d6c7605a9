"""The sweep file's `report:` section: how the grid figure and the report are laid out.

```yaml
report:
  rows: batch_size                    # the grid's rows (default)
  columns: chunk_size                 # its columns (default)
  lines: initial_weights              # one line per value in every cell (default)
  reduce: best                        # heatmaps: best or last epoch; default: the objective's
  published:                          # optional: a lab's published figures, shown beside ours
    source: "the lab's write-up, table of 3-epoch runs"
    split: test                       # the split they were measured on
    rows:
      - {settings: {initial_weights: a.pt}, stage: initial, auc: 0.8915, dist: 0.1682}
      - {settings: {initial_weights: a.pt}, auc: 0.8686, dist: 0.1090}
      - {settings: {batch_size: 8, chunk_size: 2}, note: "CUDA error!"}
```
Any training setting (a field path, as in `search_space`) may be a rows, columns or lines
setting; one the search space does not vary gives a single row, column or line. Searched
settings that are none of the three tell lines apart too (`fresh, lr=0.0001`). Kept apart
from `vtd.sweep.reporting.report` so that reading a sweep file imports neither pandas nor
matplotlib.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from vtd.sweep.plan.sections import Strict
from vtd.sweep.plan.space import SearchSpace, get_path

ROLES = ("rows", "columns", "lines")


class PublishedRow(Strict):
    """One published figure: the configuration it belongs to and what was measured.

    `settings` name training settings (field paths, as in `search_space`) and their values; an
    `initial_weights` value matches a checkpoint by its file name. `stage: initial` is the
    initial weights before training (our epoch 0), `trained` the weights after training (our
    last epoch, as the lab read them). `note` says what was published instead of numbers.
    """

    settings: dict[str, Any] = Field(default_factory=dict)
    stage: Literal["initial", "trained"] = "trained"
    auc: float | None = Field(default=None, ge=0, le=1)
    dist: float | None = Field(default=None, ge=0)
    note: str | None = None

    @model_validator(mode="after")
    def _says_something(self) -> PublishedRow:
        if self.auc is None and self.dist is None and not self.note:
            raise ValueError("a published row needs auc, dist or a note")
        return self


class PublishedFigures(Strict):
    """Figures someone published for this experiment, shown in `report.md` beside ours."""

    source: str = Field(min_length=1, description="where the figures come from")
    split: Literal["validation", "test"] = Field(
        default="test", description="the split they were measured on; ours are read there"
    )
    rows: tuple[PublishedRow, ...] = Field(min_length=1)


class ReportConfig(Strict):
    """Layout of the plots and of `report.md` (see the module docstring)."""

    rows: str = Field(default="batch_size", description="training setting of the grid's rows")
    columns: str = Field(default="chunk_size", description="training setting of its columns")
    lines: str = Field(
        default="initial_weights", description="training setting drawn as one line per value"
    )
    reduce: Literal["best", "last"] | None = Field(
        default=None,
        description="heatmaps show each trial's best or last epoch; default: objective.reduce",
    )
    published: PublishedFigures | None = Field(
        default=None, description="published figures to print beside this study's"
    )

    def problem(self, space: SearchSpace, base: Mapping[str, Any]) -> tuple[str, str] | None:
        """(key, message) for a setting that cannot lay out the grid; None when all is well.

        `base` is the base training configuration as a dict (`TrainConfig.model_dump()`).
        """
        chosen = {role: getattr(self, role) for role in ROLES}
        for role, name in chosen.items():
            others = [other for other in ROLES if other != role and chosen[other] == name]
            if others:
                return role, f"{name} is also the {others[0]} setting; pick another"
            if not space.is_config_path(name):
                return role, f"{name!r} is not a training setting (use a field path, e.g. lr)"
            if name != "initial_weights" and isinstance(get_path(base, name), Mapping):
                return role, f"{name} is a group of settings; name one inside it"
            ranged = name in space.names and not space.values_of(name)
            if ranged and role in self.model_fields_set:
                return role, f"{name} is searched as a range; the grid needs a listed setting"
        for index, row in enumerate(self.published.rows if self.published else ()):
            for name in row.settings:
                if not space.is_config_path(name):
                    return (
                        f"published.rows.{index}.settings",
                        f"{name!r} is not a training setting (use a field path, e.g. lr)",
                    )
        return None
