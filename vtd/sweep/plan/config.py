"""The sweep file: its schema (pydantic, unknown keys rejected) and `load_sweep`.

A sweep file names a study, where it is stored, how trials are chosen and judged, the data,
the training defaults (any `TrainConfig` field) and the search space over `TrainConfig` field
paths. Paths in the file are taken relative to the file's folder. Every error is one line:
`<file>:<line>: <key path>: <what is wrong>`.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from vtd.data.config import DataConfig
from vtd.demo.generate import DemoConfig, demo_folder_name
from vtd.evaluate.names import Direction
from vtd.model import ModelConfig
from vtd.sweep.plan._report_config import ReportConfig
from vtd.sweep.plan._yaml import (
    KeyPath,
    YamlDocument,
    YamlLocationError,
    format_key_path,
    load_yaml,
)
from vtd.sweep.plan.faults import FaultConfig
from vtd.sweep.plan.sections import (
    HeartbeatConfig,
    ObjectiveConfig,
    OomEvidenceConfig,
    PrunerConfig,
    SamplerConfig,
    Strict,
)
from vtd.sweep.plan.space import SearchSpace, SearchSpaceError, parse_search_space
from vtd.sweep.plan.weights import WEIGHTS_DEMO, DemoPretrainedConfig, InitialWeights
from vtd.train.config import TrainConfig

# Keys of TrainConfig that the sweep sets itself, per trial or from the file's location.
SWEEP_OWNED_FIELDS = ("output_dir", "eval_cache_dir")
CACHE_DIR = ".cache"


class SweepFileError(ValueError):
    """A sweep file that cannot be used; its message is one line naming file, line and key."""


OPTIMISTIC_NOTE = "selected on the test split: optimistic"  # flags every output of such a study


class SweepFile(Strict):
    """The sweep file as written. `load_sweep` turns it into a resolved `Sweep`."""

    study: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Optuna study and MLflow experiment name; also the folder under studies/",
    )
    storage: str | None = Field(
        default=None,
        description="Optuna storage URL; default sqlite:///<studies_dir>/optuna.db beside "
        "this file; postgresql://... for many machines",
    )
    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI; default sqlite:///<studies_dir>/mlflow.db "
        "(MLflow's ./mlruns file store is never used)",
    )
    artifact_location: str | None = Field(
        default=None,
        description="where the experiment's artifacts go; default <studies_dir>/mlflow-artifacts "
        "for a SQLite tracking store, the server's choice for a tracking server",
    )
    studies_dir: Path = Field(default=Path("studies"), description="trial logs, checkpoints")
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    n_trials: int | None = Field(
        default=None, ge=1, description="tpe / random: configurations to sample (x repeats)"
    )
    repeats: int = Field(default=1, ge=1, description="seeds per configuration")
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    memory_cap_mb: int | None = Field(
        default=None, gt=0, description="per-trial host memory (resident, MB); over it: pruned"
    )
    prune_dominated: bool = Field(
        default=True,
        description="prune without running a cell whose batch and chunk sizes are both at "
        "least those of an out-of-memory cell that is otherwise the same",
    )
    heartbeat: HeartbeatConfig = Field(
        default_factory=HeartbeatConfig, description="detecting killed workers"
    )
    faults: tuple[FaultConfig, ...] = Field(default=(), description="fault injection; off")
    oom_evidence: OomEvidenceConfig | None = Field(
        default=None, description="evidence of kernel out-of-memory kills (default: this machine's)"
    )
    demo: DemoConfig | None = Field(
        default=None,
        description="generate the synthetic demo data; `data` paths are then relative to it",
    )
    demo_pretrained: DemoPretrainedConfig = Field(default_factory=DemoPretrainedConfig)
    data: DataConfig
    training: dict[str, Any] = Field(
        default_factory=dict, description="TrainConfig fields (all but data and output_dir)"
    )
    search_space: dict[str, Any] = Field(default_factory=dict)
    report: ReportConfig = Field(
        default_factory=ReportConfig, description="grid rows, columns and lines of the plots"
    )


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file with everything resolved: URLs, folders, base training config."""

    path: Path
    file: SweepFile
    storage_url: str
    tracking_uri: str
    artifact_location: str | None
    studies_dir: Path
    cache_dir: Path
    base_raw: Mapping[str, Any]
    base_weights: str | None
    base: TrainConfig
    space: SearchSpace
    weights: InitialWeights

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def study_name(self) -> str:
        return self.file.study

    @property
    def study_dir(self) -> Path:
        return self.studies_dir / self.file.study

    @property
    def trials_dir(self) -> Path:
        return self.study_dir / "trials"

    @property
    def direction(self) -> Direction:
        return self.file.objective.resolved_direction

    def uses_demo_pretrained(self) -> bool:
        return self.base_weights == WEIGHTS_DEMO or WEIGHTS_DEMO in self.space.values_of(
            "initial_weights"
        )


def _error(path: Path, doc: YamlDocument | None, keys: KeyPath, message: str) -> SweepFileError:
    line = doc.line_of(keys) if doc is not None and keys else None
    where = f"{path}:{line}" if line else str(path)
    key_text = format_key_path(keys)
    return SweepFileError(f"{where}: {key_text}: {message}" if key_text else f"{where}: {message}")


def _pydantic_error(
    path: Path, doc: YamlDocument, error: ValidationError, prefix: KeyPath, model: type[BaseModel]
) -> SweepFileError:
    first = error.errors()[0]
    keys = [*prefix, *(part for part in first["loc"] if isinstance(part, str | int))]
    if first["type"] == "extra_forbidden":
        message = f"unknown key {str(keys[-1])!r}"
        known = _known_keys(model, keys[len(prefix) : -1])
        close = difflib.get_close_matches(str(keys[-1]), known, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        elif known:
            message += f"; known: {', '.join(sorted(known))}"
    elif first["type"] == "missing":
        message = "required key is missing"
    else:
        message = first["msg"].removeprefix("Value error, ")
        if "input" in first and not isinstance(first["input"], dict | list):
            message += f" (got {first['input']!r})"
    more = error.error_count() - 1
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return _error(path, doc, keys, message)


def _known_keys(model: type[BaseModel], keys: Sequence[str | int]) -> list[str]:
    current: Any = model
    for key in keys:
        fields = getattr(current, "model_fields", None)
        if fields is None or not isinstance(key, str) or key not in fields:
            return []
        current = _model_in(fields[key].annotation)
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def resolve_sqlite_url(url: str, folder: Path) -> str:
    """`sqlite:///relative.db` taken relative to `folder`; other URLs unchanged."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/") or url == prefix + ":memory:":
        return url
    return prefix + str((folder / url.removeprefix(prefix)).resolve())


def load_sweep(
    path: Path | str, *, storage: str | None = None, tracking_uri: str | None = None
) -> Sweep:
    """Read and validate a sweep file; raises SweepFileError (one line) for any problem.

    `storage` and `tracking_uri`, when given, replace the file's (a worker on another machine
    pointed at the shared PostgreSQL storage and MLflow server)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise SweepFileError(f"{path}: no such sweep file")
    try:
        doc = load_yaml(path)
    except YamlLocationError as error:
        where = f"{path}:{error.line}" if error.line else str(path)
        raise SweepFileError(f"{where}: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SweepFileError(f"{path}: cannot be read: {error}") from None
    if not isinstance(doc.data, dict):
        raise SweepFileError(f"{path}: a sweep file is a mapping of keys (study, data, ...)")
    try:
        sweep_file = SweepFile.model_validate(doc.data)
    except ValidationError as error:
        raise _pydantic_error(path, doc, error, (), SweepFile) from None
    overrides = {"storage": storage, "tracking_uri": tracking_uri}
    sweep_file = sweep_file.model_copy(
        update={key: value for key, value in overrides.items() if value is not None}
    )

    _check_budget(path, doc, sweep_file)
    folder = path.parent
    studies_dir = (folder / sweep_file.studies_dir).resolve()
    storage_url = resolve_sqlite_url(
        sweep_file.storage or f"sqlite:///{studies_dir / 'optuna.db'}", folder
    )
    tracking_uri = resolve_sqlite_url(
        sweep_file.tracking_uri or f"sqlite:///{studies_dir / 'mlflow.db'}", folder
    )
    if tracking_uri.startswith(("file:", "./", "/")) or "://" not in tracking_uri:
        raise _error(
            path,
            doc,
            ["tracking_uri"],
            "MLflow's file store is not supported; use sqlite:///studies/mlflow.db or a server",
        )
    artifact_location = sweep_file.artifact_location
    if artifact_location is not None and "://" not in artifact_location:
        artifact_location = str((folder / artifact_location).resolve())
    elif artifact_location is None and tracking_uri.startswith("sqlite:"):
        artifact_location = str(studies_dir / "mlflow-artifacts" / sweep_file.study)

    cache_dir = (folder / CACHE_DIR).resolve()
    training = copy.deepcopy(doc.data.get("training") or {})
    for owned in (*SWEEP_OWNED_FIELDS, "data"):
        if owned in training:
            where = "the sweep's `data` section" if owned == "data" else "the sweep, per trial"
            raise _error(path, doc, ["training", owned], f"is set by {where}; remove it here")
    if sweep_file.demo is not None:
        if "data_dir" in training:
            raise _error(
                path, doc, ["training", "data_dir"], "with `demo:`, data paths are in the demo"
            )
        data_dir = cache_dir / demo_folder_name(sweep_file.demo)
    else:
        data_dir = (folder / training.pop("data_dir", ".")).resolve()

    try:
        model = ModelConfig.model_validate(training.get("model") or {})
    except ValidationError as error:
        raise _pydantic_error(path, doc, error, ("training", "model"), ModelConfig) from None
    weights = InitialWeights(
        folder=folder,
        cache_dir=cache_dir,
        demo=sweep_file.demo,
        pretrained=sweep_file.demo_pretrained,
        model=model,
    )
    base_raw: dict[str, Any] = {
        **training,
        "data": copy.deepcopy(doc.data["data"]),
        "data_dir": data_dir,
        "output_dir": studies_dir / sweep_file.study / "trials",
        # trials from the same weights share the frozen part's evaluation outputs
        "eval_cache_dir": studies_dir / sweep_file.study / "eval_cache",
    }
    # best.pt then means best by the objective's metric.
    base_raw.setdefault("checkpoint_metric", sweep_file.objective.metric)
    base_weights = base_raw.setdefault("initial_weights", None)
    try:
        weights.check(base_weights)
    except ValueError as error:
        raise _error(path, doc, ["training", "initial_weights"], str(error)) from None
    try:
        base = weights.validate(base_raw)
    except ValidationError as error:
        first = error.errors()[0]["loc"]
        prefix: KeyPath = () if first and first[0] == "data" else ("training",)
        raise _pydantic_error(path, doc, error, prefix, TrainConfig) from None
    _check_objective_split(path, doc, sweep_file, base)

    try:
        space = parse_search_space(
            sweep_file.search_space,
            sampler=sweep_file.sampler.name,
            base_raw=base_raw,
            validate=weights.validate,
            check_weights=weights.check,
        )
    except SearchSpaceError as error:
        raise _error(path, doc, ["search_space", *error.keys], str(error)) from None
    report_problem = sweep_file.report.problem(space, base.model_dump(mode="json"))
    if report_problem is not None:
        raise _error(path, doc, ["report", report_problem[0]], report_problem[1])
    for index, fault in enumerate(sweep_file.faults):
        unknown = [key for key in fault.when if not space.is_config_path(key)]
        if unknown:
            raise _error(path, doc, ["faults", index, "when", unknown[0]], "not a training setting")
    return Sweep(
        path=path,
        file=sweep_file,
        storage_url=storage_url,
        tracking_uri=tracking_uri,
        artifact_location=artifact_location,
        studies_dir=studies_dir,
        cache_dir=cache_dir,
        base_raw=base_raw,
        base_weights=base_weights,
        base=base,
        space=space,
        weights=weights,
    )


def _check_budget(path: Path, doc: YamlDocument, sweep_file: SweepFile) -> None:
    grid = sweep_file.sampler.name == "grid"
    if grid and sweep_file.n_trials is not None:
        raise _error(path, doc, ["n_trials"], "a grid runs every cell (x repeats); remove n_trials")
    if not grid and sweep_file.n_trials is None:
        raise _error(
            path, doc, ["n_trials"], f"the {sweep_file.sampler.name} sampler needs n_trials"
        )
    if not sweep_file.memory_cap_mb:
        for index, fault in enumerate(sweep_file.faults):
            if fault.kind == "memory_cap":
                raise _error(path, doc, ["faults", index, "kind"], "needs memory_cap_mb")


def _check_objective_split(
    path: Path, doc: YamlDocument, sweep_file: SweepFile, base: TrainConfig
) -> None:
    split = sweep_file.objective.split
    data = base.data
    has_split = data.validation is not None if split == "validation" else data.test is not None
    if split == "test" and data.cross_validation is not None:
        has_split = True
    if not has_split:
        hint = (
            "add data.validation (e.g. {groups: 1}: training groups held out)"
            if split == "validation"
            else "add data.test"
        )
        raise _error(path, doc, ["objective", "split"], f"the data has no {split} split; {hint}")
