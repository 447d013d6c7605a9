"""vtd.model.checkpoint: the authors' file formats, partial loading, reports and errors."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
import torch
from _golden_weights import read_key_specs
from torch import nn

from vtd.model import VTD, CheckpointError, ModelConfig, load_checkpoint, save_checkpoint

SMALL = ModelConfig(variant="small")
LSTM_KEYS = tuple(
    f"convlstm_scene.{kind}_{part}_l{layer}"
    for layer in (0, 1)
    for kind, part in (("weight", "ih"), ("weight", "hh"), ("bias", "ih"), ("bias", "hh"))
)


def trained_like(config: ModelConfig = SMALL, seed: int = 0) -> VTD:
    """A model whose every tensor differs from a fresh one (as a trained checkpoint would)."""
    torch.manual_seed(seed)
    model = VTD(config)
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.uniform_(-1, 1)
            else:
                value.fill_(seed + 7)
    return model


def assert_same_tensors(model: nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def assert_one_line_naming(error: pytest.ExceptionInfo[CheckpointError], *names: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for name in names:
        assert name in message, (name, message)


# --- the authors' two public files ------------------------------------------------------------
def test_spatial_weights_leave_exactly_the_convlstm_fresh_full_variant(tmp_path: Path) -> None:
    """All keys of the tsv but convlstm_scene.*, as initial_weights_for_temporal_training.pt.

    Each tensor is one stored value expanded to its full shape, so the file stays tiny.
    """
    specs = [spec for spec in read_key_specs() if not spec.key.startswith("convlstm_scene.")]
    snapshot = {
        spec.key: torch.full((1,) * len(spec.shape), index, dtype=spec.dtype).expand(spec.shape)
        for index, spec in enumerate(specs)
    }
    path = tmp_path / "initial_weights_for_temporal_training.pt"
    torch.save({"model": snapshot}, path)
    model = VTD(ModelConfig(variant="full"))
    lstm_before = {k: v.clone() for k, v in model.state_dict().items() if k in LSTM_KEYS}

    report = load_checkpoint(model, path)

    assert report.fresh == LSTM_KEYS
    assert report.missing == LSTM_KEYS
    assert report.missing_counters == () and report.unexpected == ()
    assert report.loaded == 959 - 8
    state = model.state_dict()
    for index, spec in enumerate(specs):
        assert torch.all(state[spec.key] == index), spec.key
    assert_same_tensors(model, lstm_before)


def test_spatial_weights_small_variant_report_and_values(tmp_path: Path) -> None:
    source = trained_like()
    snapshot = {k: v for k, v in source.state_dict().items() if not k.startswith("convlstm")}
    path = tmp_path / "spatial.pt"
    torch.save({"model": snapshot}, path)
    model = VTD(SMALL)
    report = load_checkpoint(model, path)
    assert report.fresh == LSTM_KEYS
    assert_same_tensors(model, snapshot)


def test_full_spatiotemporal_checkpoint_loads_with_nothing_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = trained_like()
    path = tmp_path / "model_videoatttarget.pt"
    torch.save({"model": source.state_dict()}, path)
    model = VTD(SMALL)
    with caplog.at_level(logging.INFO, logger="vtd.model.checkpoint"):
        report = load_checkpoint(model, path)
    assert report.missing == () and report.fresh == () and report.unexpected == ()
    assert report.loaded == len(source.state_dict())
    assert_same_tensors(model, source.state_dict())
    assert [r.getMessage() for r in caplog.records] == [report.summary()]
    assert str(path) in report.summary()


# --- variants of the format ---------------------------------------------------------------------
def test_bare_state_dict_with_module_prefix(tmp_path: Path) -> None:
    source = trained_like()
    path = tmp_path / "data_parallel.pt"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    model = VTD(SMALL)
    report = load_checkpoint(model, path)
    assert report.missing == () and report.unexpected == ()
    assert_same_tensors(model, source.state_dict())


def test_missing_batchnorm_counters_are_reported_apart(tmp_path: Path) -> None:
    source = trained_like()
    state = source.state_dict()
    counters = tuple(k for k in state if k.endswith("num_batches_tracked"))
    path = tmp_path / "old.pt"
    torch.save({"model": {k: v for k, v in state.items() if k not in counters}}, path)
    model = VTD(SMALL)
    report = load_checkpoint(model, path)
    assert counters and report.missing_counters == counters
    assert report.fresh == ()
    assert_same_tensors(model, {k: v for k, v in state.items() if k not in counters})


def test_unexpected_keys_are_reported_and_ignored(tmp_path: Path) -> None:
    source = trained_like()
    snapshot = {**source.state_dict(), "old_head.weight": torch.ones(3)}
    path = tmp_path / "extra.pt"
    torch.save({"model": snapshot, "epoch": 3}, path)
    report = load_checkpoint(VTD(SMALL), path)
    assert report.unexpected == ("old_head.weight",)


def test_save_load_round_trip_is_exact_and_readable_like_the_authors(tmp_path: Path) -> None:
    source = trained_like(seed=1)
    path = save_checkpoint(source, tmp_path / "run" / "epoch_01_weights.pt", extra={"epoch": 1})
    assert [p.name for p in path.parent.iterdir()] == ["epoch_01_weights.pt"]  # no temp left
    authors_view = torch.load(path)  # what the authors' eval script does, then ['model']
    assert authors_view["epoch"] == 1
    assert list(authors_view["model"]) == list(source.state_dict())
    model = VTD(SMALL)
    report = load_checkpoint(model, path)
    assert report.missing == () and report.unexpected == ()
    assert_same_tensors(model, source.state_dict())


def test_save_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    save_checkpoint(trained_like(seed=1), path)
    second = trained_like(seed=2)
    save_checkpoint(second, path)
    model = VTD(SMALL)
    load_checkpoint(model, path)
    assert_same_tensors(model, second.state_dict())


# --- files that are not checkpoints ---------------------------------------------------------------
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_truncated_file(tmp_path: Path, zip_format: bool) -> None:
    path = tmp_path / "truncated.pt"
    model = trained_like()
    torch.save({"model": model.state_dict()}, path, _use_new_zipfile_serialization=zip_format)
    assert load_checkpoint(VTD(SMALL), path).missing == ()  # the whole file loads
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(VTD(SMALL), path)
    assert_one_line_naming(error, str(path), "truncated")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("frame,xmin,ymin,xmax,ymax\n1,2,3,4,5\n", "not a PyTorch checkpoint"),
        ("hello\n", "not a PyTorch checkpoint"),
        ("", "empty file"),
    ],
    ids=["csv", "prose", "empty"],
)
def test_text_file(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "notes.pt"
    path.write_text(text)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(VTD(SMALL), path)
    assert_one_line_naming(error, str(path), reason)


def test_wrong_shape_names_file_and_key(tmp_path: Path) -> None:
    state = trained_like().state_dict()
    state["attn.weight"] = torch.zeros(49, 100)
    path = tmp_path / "wrong_shape.pt"
    torch.save({"model": state}, path)
    model = VTD(SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(model, path)
    assert_one_line_naming(error, str(path), "attn.weight")
    assert_same_tensors(model, before)  # nothing half-loaded


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        ([torch.zeros(2)], ["list"]),
        ({"model": [1, 2]}, ["'model'"]),
        ({"model": {"attn.bias": 3.0}}, ["'attn.bias'", "float"]),
    ],
    ids=["not-a-dict", "model-not-a-dict", "non-tensor-value"],
)
def test_wrong_contents(tmp_path: Path, payload: object, names: list[str]) -> None:
    path = tmp_path / "odd.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(VTD(SMALL), path)
    assert_one_line_naming(error, str(path), *names)


def test_arbitrary_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save({"model": {"attn.bias": argparse.Namespace(x=1)}}, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(VTD(SMALL), path)
    assert_one_line_naming(error, str(path), "argparse.Namespace", "weights_only")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.pt"
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(VTD(SMALL), path)
    assert_one_line_naming(error, str(path))
    assert isinstance(error.value, ValueError)


def test_best_linked_to_last_keeps_its_weights_when_last_moves_on(tmp_path):
    from vtd.data import DataConfig
    from vtd.train import EpochRecord, TrainConfig
    from vtd.train.saving import same_checkpoint, save_epoch

    config = TrainConfig(data=DataConfig(sources=["data"]), model=ModelConfig(variant="small"))
    first, second = trained_like(seed=1), trained_like(seed=2)
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"

    def record(epoch: int) -> EpochRecord:
        return EpochRecord(epoch, 1.0, 1.0, 0.0, None, None, 1.0, 1.0, 0.0)

    save_epoch(first, last, record(1), config)
    same_checkpoint(last, best)
    save_epoch(second, last, record(2), config)

    def weights(path):
        return torch.load(path, weights_only=True)["model"]["fc_inout.weight"]

    assert torch.equal(weights(best), first.state_dict()["fc_inout.weight"])
    assert torch.equal(weights(last), second.state_dict()["fc_inout.weight"])
    assert json.loads(best.with_suffix(".json").read_text())["epoch"] == 1
    assert json.loads(last.with_suffix(".json").read_text())["epoch"] == 2
