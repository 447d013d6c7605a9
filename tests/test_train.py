"""The published fine-tuning recipe on the small model and the tiny demo data."""

import json
from pathlib import Path

import pytest
import torch
from _data_factory import FrameSpec, write_clip

from vtd.data import DataConfig, chunk_loader
from vtd.model import VTD, ModelConfig, load_checkpoint, save_checkpoint
from vtd.numerics import NonFiniteLoss
from vtd.train import EpochRecord, FineTuning, StopTraining, TrainConfig, finetune
from vtd.train.chunks import micro_batches

SMALL = ModelConfig(variant="small")


def config(data: DataConfig, tmp_path: Path, **overrides) -> TrainConfig:
    settings = {
        "data": data,
        "model": SMALL,
        "epochs": 1,
        "batch_size": 4,
        "chunk_size": 3,
        "output_dir": tmp_path / "run",
        "checkpoints": "none",
    }
    return TrainConfig(**{**settings, **overrides})


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def test_micro_batches_split_packed_rows_by_clip():
    # 3 clips alive at t0, 3 at t1, 1 at t2: rows 0-2, 3-5, 6
    parts = micro_batches(torch.tensor([3, 3, 1]), micro_size=2, clips=4)
    assert [p.rows.tolist() for p in parts if p] == [[0, 1, 3, 4, 6], [2, 5]]
    assert [p.batch_sizes.tolist() for p in parts if p] == [[2, 2, 1], [1, 1]]
    assert len(parts) == 2
    whole = micro_batches(torch.tensor([3, 3, 1]), micro_size=4, clips=4)
    assert whole[0].rows.tolist() == list(range(7))
    assert micro_batches(torch.tensor([1, 1]), micro_size=1, clips=3)[1:] == [None, None]


def test_frozen_part_is_untouched_and_batchnorm_statistics_do_not_move(tiny_demo_data, tmp_path):
    run = FineTuning(config(tiny_demo_data, tmp_path, lr=1e-3))
    before = state_of(run.model)
    frozen = {id(p) for p in run.model.frozen_parameters()}
    run.train()
    after = run.model.state_dict()
    names = {id(p): name for name, p in run.model.named_parameters()}
    for parameter in run.model.parameters():
        name = names[id(parameter)]
        if id(parameter) in frozen:
            assert torch.equal(parameter, before[name]), f"frozen {name} changed"
            assert parameter.grad is None, f"frozen {name} holds a gradient"
        elif name.startswith("convlstm_scene"):
            assert not torch.equal(parameter, before[name]), f"trained {name} did not change"
    for key, value in after.items():
        if "running_" in key or "num_batches_tracked" in key:
            assert torch.equal(value, before[key]), f"BatchNorm statistic {key} moved"
    run.close()


def test_a_split_that_is_all_out_of_frame_trains_with_a_finite_loss(tmp_path):
    for subset, show in (("train", "s1"), ("test", "s2")):
        frames = [FrameSpec(f"{i:06d}", (10.0, 8.0, 24.0, 22.0), (-1.0, -1.0)) for i in range(6)]
        write_clip(
            tmp_path / "data",
            layout="objectattention",
            subset=subset,
            show=show,
            clip="c1",
            person="p1",
            frames=frames,
        )
    result = finetune(config(DataConfig(sources=[str(tmp_path / "data")]), tmp_path))
    record = result.records[0]
    assert torch.isfinite(torch.tensor(record.train_loss)) and record.train_loss > 0
    assert record.train_l2 == 0.0 and record.test is not None and record.test.in_frame == 0


def test_accumulated_micro_batches_make_the_same_update_as_one_batch(tiny_demo_data, tmp_path):
    data = tiny_demo_data.model_copy(
        update={"augmentation": tiny_demo_data.augmentation.model_copy(update={"enabled": False})}
    )
    # Dropout draws differ between the two schedules; the single-frame BatchNorm quirk is
    # about frames per call, not about accumulation.
    model = ModelConfig(variant="small", lstm_dropout=0.0, single_frame_bn_quirk=False)
    gradients, losses = {}, {}
    for steps in (1, 4):
        run = FineTuning(config(data, tmp_path, model=model, accumulation_steps=steps))
        loader = chunk_loader(run.train_clips, batch_size=4, chunk_size=3, train=True, epoch=1)
        optimizer_step = run.optimizer.step
        seen: list[dict[str, torch.Tensor]] = []

        def record_then_step(seen=seen, run=run, optimizer_step=optimizer_step):
            # the gradients the update is made of, at the moment the optimizer applies them
            seen.append(
                {n: p.grad.clone() for n, p in run.model.named_parameters() if p.grad is not None}
            )
            optimizer_step()

        run.optimizer.step = record_then_step
        chunks = iter(loader)
        losses[steps] = [run.step(next(chunks)) for _ in range(2)]  # the second carries state
        gradients[steps] = seen
        run.close()
    for whole, accumulated in zip(gradients[1], gradients[4], strict=True):
        assert whole.keys() == accumulated.keys() and len(whole) == 18  # every trained tensor
        for name, value in whole.items():
            torch.testing.assert_close(accumulated[name], value, rtol=1e-4, atol=1e-7, msg=name)
    for whole, accumulated in zip(losses[1], losses[4], strict=True):
        assert accumulated == pytest.approx(whole, rel=1e-5)


def test_a_seeded_cpu_run_repeats_exactly(tiny_demo_data, tmp_path):
    results = [finetune(config(tiny_demo_data, tmp_path / str(i), seed=7)) for i in range(2)]
    first, second = (
        [r.__dict__ | {"seconds": 0, "peak_host_mb": 0} for r in result.records]
        for result in results
    )
    assert first == second


def test_on_epoch_can_stop_the_run(tiny_demo_data, tmp_path):
    seen: list[EpochRecord] = []

    def stop_after_first(record: EpochRecord) -> bool:
        seen.append(record)
        return True

    result = finetune(config(tiny_demo_data, tmp_path, epochs=3), stop_after_first)
    # epoch 0 (the initial weights) is seen, but only a training epoch can stop the run
    assert [r.epoch for r in seen] == [0, 1] and result.stopped_early

    def raise_stop(record: EpochRecord) -> None:
        raise StopTraining

    assert len(finetune(config(tiny_demo_data, tmp_path, epochs=2), raise_stop).records) == 1


def test_checkpoints_best_and_last_in_the_authors_format(tiny_demo_data, tmp_path):
    result = finetune(config(tiny_demo_data, tmp_path, epochs=2, checkpoints="best_last"))
    folder = tmp_path / "run"
    assert {p.name for p in folder.glob("*.pt")} == {"best.pt", "last.pt"}
    assert result.last_checkpoint == folder / "last.pt"
    payload = torch.load(folder / "last.pt", weights_only=True)
    assert set(payload) == {"model"}
    sidecar = json.loads((folder / "last.json").read_text())
    assert sidecar["epoch"] == 2 and sidecar["config"]["model"]["variant"] == "small"
    assert sidecar["metrics"]["validation"]["auc"] == result.records[-1].validation.auc
    model = VTD(SMALL)
    assert not load_checkpoint(model, folder / "best.pt").missing


def test_every_epoch_checkpoints(tiny_demo_data, tmp_path):
    finetune(config(tiny_demo_data, tmp_path, epochs=2, checkpoints="every"))
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pt")) == [
        "epoch_001.pt",
        "epoch_002.pt",
    ]


def test_initial_weights_are_loaded(tiny_demo_data, tmp_path):
    source = VTD(SMALL)
    torch.nn.init.constant_(source.fc_inout.bias, 3.25)
    save_checkpoint(source, tmp_path / "init.pt")
    run = FineTuning(config(tiny_demo_data, tmp_path, initial_weights=tmp_path / "init.pt"))
    assert run.load_report is not None and not run.load_report.missing
    assert run.model.fc_inout.bias.item() == 3.25
    assert torch.equal(run.model.conv1_scene.weight, source.conv1_scene.weight)
    run.close()


def test_config_rejects_what_cannot_run(tiny_demo_data, tmp_path):
    with pytest.raises(ValueError, match="multiple of accumulation_steps"):
        config(tiny_demo_data, tmp_path, batch_size=6, accumulation_steps=4)
    with pytest.raises(ValueError, match="cuda:N"):
        config(tiny_demo_data, tmp_path, device="gpu")
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        FineTuning(config(tiny_demo_data, tmp_path, device="cpu", precision="fp16"))


@pytest.mark.slow
def test_training_lowers_the_loss_and_raises_auc(tiny_demo, tmp_path):
    # Everything trains (the recipe that makes the demo's pretrained weights): from a fresh
    # start the frozen part's random features leave little for the published recipe to learn.
    data = DataConfig(sources=[str(tiny_demo.objectattention.root)])
    result = finetune(
        config(data, tmp_path, epochs=4, batch_size=2, chunk_size=4, lr=5e-4, freeze="none")
    )
    first, last = result.records[0], result.records[-1]
    assert last.train_loss < 0.7 * first.train_loss
    assert last.test.auc > first.test.auc + 0.05


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_bf16_autocast_runs_on_the_cpu(tiny_demo_data, tmp_path, precision):
    # fp16 needs CUDA (its grad scaler); bf16 autocast also works on the CPU. The dtypes that
    # the frozen part's, the ConvLSTM's and the head's layers put out, in training and in
    # evaluation, show that bf16 ran (and fp32, the control, did not).
    run = FineTuning(config(tiny_demo_data, tmp_path, device="cpu", precision=precision))
    seen: dict[tuple[str, bool], set[torch.dtype]] = {}
    for name in ("conv1_scene", "convlstm_scene", "conv4"):
        module = getattr(run.model, name)

        def record(module, _inputs, output, name=name):
            tensor = output[0] if isinstance(output, tuple) else output
            seen.setdefault((name, run.model.training), set()).add(tensor.dtype)

        module.register_forward_hook(record)
    record = run.train().records[0]
    run.close()
    expected = torch.bfloat16 if precision == "bf16" else torch.float32
    assert set(seen) == {(name, mode) for name in ("conv1_scene", "conv4") for mode in (0, 1)} | {
        ("convlstm_scene", mode) for mode in (0, 1)
    }
    assert all(dtypes == {expected} for dtypes in seen.values()), seen
    assert torch.isfinite(torch.tensor(record.train_loss))
    assert 0 <= record.validation.auc <= 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="device auto picks CUDA here")
def test_fp16_is_refused_when_auto_picks_the_cpu(tiny_demo_data, tmp_path):
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        FineTuning(config(tiny_demo_data, tmp_path, device="auto", precision="fp16"))


def test_epoch_zero_evaluates_the_initial_weights_before_training(tiny_demo_data, tmp_path):
    from vtd.data import load_splits
    from vtd.evaluate.loop import EvaluationData, evaluate

    weights = tmp_path / "initial.pt"
    torch.manual_seed(5)
    save_checkpoint(VTD(SMALL), weights)
    data = tiny_demo_data  # one session held out for validation, and a test split
    seen: list[EpochRecord] = []
    result = finetune(
        config(data, tmp_path, epochs=1, initial_weights=weights, checkpoints="best_last"),
        seen.append,
    )
    assert [r.epoch for r in seen] == [0, 1]
    initial = seen[0]
    assert result.initial == initial and [r.epoch for r in result.records] == [1]
    assert initial.train_loss is None and initial.checkpoint is None
    assert initial.validation is not None and initial.test is not None
    # the numbers are those of the untrained checkpoint, evaluated on its own
    model = VTD(SMALL)
    load_checkpoint(model, weights)
    test_clips = load_splits(data).test
    loaded = EvaluationData(test_clips, batch_size=4, chunk_size=3, cache="off")
    expected = evaluate(model, loaded, device=torch.device("cpu")).metrics
    loaded.close()
    assert initial.test.auc == pytest.approx(expected.auc)
    assert initial.test.dist == pytest.approx(expected.dist)
    # never "best": the best checkpoint is a trained epoch's
    sidecar = json.loads(result.best_checkpoint.with_suffix(".json").read_text())
    assert sidecar["epoch"] == 1

    skipped: list[EpochRecord] = []
    finetune(config(data, tmp_path, epochs=1, evaluate_initial=False), skipped.append)
    assert [r.epoch for r in skipped] == [1]


def _first_chunk(run: FineTuning):
    loader = chunk_loader(run.train_clips, batch_size=4, chunk_size=3, train=True, epoch=1)
    return next(iter(loader))


def test_a_nan_input_ends_training_before_the_optimizer_applies_it(tiny_demo_data, tmp_path):
    run = FineTuning(config(tiny_demo_data, tmp_path))
    before = state_of(run.model)
    steps: list[int] = []
    optimizer_step = run.optimizer.step
    run.optimizer.step = lambda: (steps.append(1), optimizer_step())
    chunk = _first_chunk(run)
    chunk.images[0] = float("nan")  # one bad frame: the whole chunk's loss becomes NaN
    with pytest.raises(NonFiniteLoss, match=r"^non-finite loss at epoch 3, chunk 7$") as caught:
        run.step(chunk, epoch=3, index=7)
    assert (caught.value.epoch, caught.value.chunk) == (3, 7)
    assert steps == []  # the optimizer never ran, so no weight and no Adam moment moved
    assert all(torch.equal(value, before[key]) for key, value in run.model.state_dict().items())
    assert all(p.grad is None for p in run.model.parameters())
    run.close()


def test_finite_loss_with_nan_gradients_is_stopped_too(tiny_demo_data, tmp_path):
    run = FineTuning(config(tiny_demo_data, tmp_path))
    before = state_of(run.model)
    run.model.conv4.weight.register_hook(lambda grad: grad * float("nan"))
    with pytest.raises(NonFiniteLoss, match=r"non-finite gradient at epoch 1, chunk 1"):
        run.step(_first_chunk(run), epoch=1, index=1)
    assert all(torch.equal(value, before[key]) for key, value in run.model.state_dict().items())
    run.close()


def test_the_epoch_and_chunk_of_a_nan_are_named_by_train(tiny_demo_data, tmp_path, monkeypatch):
    from vtd.train import recipe

    honest = recipe.chunk_loss
    calls: list[int] = []

    def nan_on_second_chunk(*args, **kwargs):
        loss = honest(*args, **kwargs)
        calls.append(1)
        return type(loss)(*(part * float("nan") for part in loss)) if len(calls) == 2 else loss

    monkeypatch.setattr(recipe, "chunk_loss", nan_on_second_chunk)
    run = FineTuning(config(tiny_demo_data, tmp_path, epochs=2))
    with pytest.raises(NonFiniteLoss, match=r"^non-finite loss at epoch 1, chunk 2$"):
        run.train()
    run.close()
