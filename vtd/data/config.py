"""Typed configuration of the data: sources, splits, cross-validation, augmentation.

`DataConfig` is the `data:` section of a sweep or training file. Paths in it are relative to
a base directory that the caller passes when the index is built (the folder of the sweep file),
so that a config file works wherever the project is checked out.

A one-line mixed config, ObjectAttention plus VideoAttentionTarget in every split::

    data: {sources: [data/objectattention, data/videoattentiontarget]}

Five-fold cross-validation by participant (ObjectAttention sessions are its shows), fold 2,
with two training participants held out for validation (model selection reads validation,
never test)::

    data:
      sources: [data/objectattention]
      cross_validation: {folds: 5, fold: 2}
      validation: {groups: 2}

Named splits (the lab's participant splits), one chosen by `split`, which a sweep searches::

    data:
      sources: [data/objectattention]
      groups: {Shiva: ["Shiva_*"], Gabriele: ["Gabriele_*"]}   # participant -> sessions
      splits:
        shiva: {validation: [Gabriele], test: [Shiva]}
      split: shiva
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GroupBy = Literal["show", "person"]
# The readers' names (vtd.data.formats._registry.FORMAT_NAMES), or detection per file.
AnnotationFormat = Literal["auto", "objectattention", "videoattentiontarget"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """One data set on disk: `<root>/<images>/<show>/<clip>/<frame>.<ext>` and
    `<root>/<annotations>/<subset>/<show>/<clip>/<person>.txt`.

    The annotation format (VideoAttentionTarget or ObjectAttention) is detected per file
    (`format: auto`), and images are found whatever their extension, so one source may even
    mix both. A named `format` never guesses: a file with that format's header has it skipped,
    any other file is read from its first line as data (a headerless ObjectAttention file then
    keeps its first frame, which the lab's pandas reader, `header=0`, dropped).
    """

    root: Path = Field(description="data set folder, relative to the config's base directory")
    name: str | None = Field(
        default=None, description="name used by splits and reports; default: the root's name"
    )
    images: str = Field(default="images", description="image folder under root")
    annotations: str = Field(default="annotations", description="annotation folder under root")
    subsets: tuple[str, ...] | None = Field(
        default=None,
        description="annotation subfolders to index (e.g. [train, test]); None: all of them",
    )
    format: AnnotationFormat = Field(
        default="auto",
        description="annotation format of every file: auto (detected per file from its first "
        "line), objectattention or videoattentiontarget",
    )

    @property
    def dataset(self) -> str:
        """The source's name in splits and reports."""
        return self.name if self.name is not None else self.root.name

    def resolve(self, base_dir: Path | str) -> Path:
        """The source's root folder, `root` taken relative to `base_dir` unless absolute."""
        return Path(base_dir) / self.root


class SplitSpec(_Strict):
    """Which clips make up a split. Every given list must be matched; an empty list matches
    nothing. Names may be shell patterns (`P0*`). `None` means no restriction."""

    subsets: tuple[str, ...] | None = Field(
        default=None, description="annotation subfolders, e.g. [train]"
    )
    sources: tuple[str, ...] | None = Field(default=None, description="source names")
    shows: tuple[str, ...] | None = Field(
        default=None, description="shows (ObjectAttention: sessions / participants) to include"
    )
    persons: tuple[str, ...] | None = Field(default=None, description="persons to include")
    exclude_shows: tuple[str, ...] = ()
    exclude_persons: tuple[str, ...] = ()


class HoldOut(_Strict):
    """A validation split carved from the training groups (shows or persons, see `group_by`)."""

    groups: int = Field(ge=1, description="how many training groups go to validation")
    seed: int = Field(default=0, description="which ones: a deterministic draw from this seed")


class CrossValidation(_Strict):
    """k-fold cross-validation over groups (shows or persons, see `group_by`).

    The groups of `pool` are sorted, shuffled with `seed` and dealt into `folds` folds of near
    equal size; fold `fold` is the test split, the others train. 10 participants, 5 folds:
    8 train, 2 test, every participant tested exactly once over the 5 folds.
    """

    folds: int = Field(ge=2)
    fold: int = Field(ge=0, description="0-based index of the test fold")
    seed: int = 0
    pool: SplitSpec = Field(
        default_factory=SplitSpec, description="the clips that take part; default: all"
    )

    @model_validator(mode="after")
    def _fold_in_range(self) -> CrossValidation:
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} out of range for {self.folds} folds (0-based)")
        return self


class NamedSplit(_Strict):
    """One split named in `DataConfig.splits`: the groups tested and held out for validation;
    every other group of the pool trains. A group is a name of `DataConfig.groups` (e.g. a
    participant) or a show name (compared ignoring case, spaces and punctuation)."""

    test: tuple[str, ...] = Field(min_length=1, description="groups of the test split")
    validation: tuple[str, ...] = Field(
        default=(), description="groups held out for validation (model selection)"
    )

    @model_validator(mode="after")
    def _disjoint(self) -> NamedSplit:
        both = sorted(set(self.test) & set(self.validation))
        if both:
            raise ValueError(f"in both test and validation: {both}")
        return self


class AugmentationConfig(_Strict):
    """Training augmentation, drawn once per clip per epoch and applied to all its frames.

    Defaults are the published video loader's: each of box jitter, crop, flip and colour
    change with probability 0.5; jitter expands the head box by up to 5% (the authors drew
    `k = u * 0.1` with `u < 0.5`); brightness, contrast and saturation factors in 0.5..1.5;
    no hue shift (set `hue` to allow one, up to that many turns of the colour wheel).
    """

    enabled: bool = True
    jitter_probability: float = Field(default=0.5, ge=0, le=1)
    jitter_max: float = Field(default=0.05, ge=0, description="largest relative box expansion")
    crop_probability: float = Field(default=0.5, ge=0, le=1)
    flip_probability: float = Field(default=0.5, ge=0, le=1)
    colour_probability: float = Field(default=0.5, ge=0, le=1)
    brightness: tuple[float, float] = (0.5, 1.5)
    contrast: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (0.5, 1.5)
    hue: float = Field(default=0.0, ge=0, le=0.5)

    @field_validator("brightness", "contrast", "saturation")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 <= low <= high:
            raise ValueError(f"expected 0 <= low <= high, got {list(value)}")
        return value


class DataConfig(_Strict):
    """Sources, the splits drawn from them, and how frames become tensors.

    Without `cross_validation`, `train` and `test` select clips (defaults: the `train` and
    `test` annotation subfolders, as VideoAttentionTarget ships; a default `train` leaves out
    the test clips, so listing test shows is enough); `test: null` runs without a test split.
    `validation` is either a selection like `train` (its clips are taken out of train) or
    `{groups: n}`: n training groups held out. No clip may fall in both train and test.
    `train` and `test` may also be lists of selections, whose clips add up (one source's
    training subset plus some shows of another's).
    """

    sources: tuple[SourceSpec, ...] = Field(min_length=1)
    group_by: GroupBy = Field(
        default="show",
        description="unit of folds and hold-outs: show (session, participant) or person",
    )
    train: SplitSpec | tuple[SplitSpec, ...] = SplitSpec(subsets=("train",))
    validation: HoldOut | SplitSpec | None = None
    test: SplitSpec | tuple[SplitSpec, ...] | None = SplitSpec(subsets=("test",))
    cross_validation: CrossValidation | None = None
    show_aliases: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "a show name as written in a selection -> the show folder it means, for names "
            "that differ from the folder by more than case, spaces and punctuation (the "
            "lab's 'Sienfield'); never guessed"
        ),
    )
    groups: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description=(
            "named groups of shows for `splits`, e.g. a participant -> its session folders "
            "(names or patterns); a name not listed here is a show name"
        ),
    )
    splits: dict[str, NamedSplit] = Field(
        default_factory=dict, description="named splits of groups; `split` chooses one"
    )
    split: str | None = Field(
        default=None,
        description="the named split of `splits` to use (a search-space dimension: data.split)",
    )
    split_pool: SplitSpec = Field(
        default_factory=SplitSpec,
        description="the clips a named split divides; default: all, whatever their subset",
    )
    on_bad_frame: Literal["error", "skip"] = Field(
        default="error",
        description=(
            "error: the first bad frame (malformed line, no head detected, bad box or gaze, "
            "missing image, repeated frame) stops indexing with its file and line; skip: such "
            "frames are left out, counted in one warning and in `vtd-sweep data`. Empty files "
            "and clips left without frames are errors either way."
        ),
    )
    smoothing_window: int = Field(default=11, ge=1, description="head-box moving average (odd)")
    eval_head_expansion: float = Field(
        default=0.0,
        ge=0,
        description=(
            "relative head-box expansion for the face crop and head channel in evaluation; "
            "the published video loader used none (its image loader used 0.1)"
        ),
    )
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)

    @field_validator("sources", mode="before")
    @classmethod
    def _paths_as_sources(cls, value: object) -> object:
        # A bare path is the common case: `sources: [data/objectattention]`.
        if isinstance(value, str | Path):
            value = [value]
        if isinstance(value, list | tuple):
            return [{"root": item} if isinstance(item, str | Path) else item for item in value]
        return value

    @field_validator("smoothing_window")
    @classmethod
    def _odd_window(cls, value: int) -> int:
        if value % 2 != 1:
            raise ValueError(f"the smoothing window must be odd, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        names = [source.dataset for source in self.sources]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"source names must be unique; repeated: {repeated} (set `name`)")
        if self.split is not None:
            if self.split not in self.splits:
                raise ValueError(
                    f"split {self.split!r} is not one of the named splits: {sorted(self.splits)}"
                )
            clashing = sorted(
                {"train", "test", "validation", "cross_validation"} & self.model_fields_set
            )
            if clashing:
                raise ValueError(
                    f"a named split chooses train, validation and test; remove {clashing} "
                    "(use split_pool to restrict the clips)"
                )
        empty = sorted(name for name, shows in self.groups.items() if not shows)
        if empty:
            raise ValueError(f"groups without shows: {empty}")
        if self.cross_validation is not None:
            clashing = sorted({"train", "test"} & self.model_fields_set)
            if clashing:
                raise ValueError(
                    f"cross_validation chooses the train and test splits; remove {clashing} "
                    "(use cross_validation.pool to restrict the clips)"
                )
        return self
