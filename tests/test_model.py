"""vtd.model: keys and shapes of the authors' network, packed state, dropout, the quirk."""

from __future__ import annotations

import math

import pytest
import torch
from _golden_weights import read_key_specs
from pydantic import ValidationError
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from vtd.model import VTD, ConvLSTM, EncodedFrames, LSTMState, ModelConfig

SMALL = ModelConfig(variant="small")


def random_frames(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 224, 224, generator=generator)
    faces = torch.randn(n, 3, 224, 224, generator=generator)
    heads = torch.zeros(n, 1, 224, 224)
    for i in range(n):
        x0, y0 = torch.randint(0, 150, (2,), generator=generator).tolist()
        heads[i, 0, y0 : y0 + 40, x0 : x0 + 30] = 1
    return images, heads, faces


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine weights away from the identity, so that skipping a
    BatchNorm changes the numbers visibly."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.1)


def bn_eval(model: VTD) -> VTD:
    """Training mode with BatchNorm in eval mode, as the published fine-tuning runs."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()
    return model


@pytest.fixture(scope="module")
def small_model() -> VTD:
    torch.manual_seed(0)
    model = VTD(SMALL).eval()
    randomise_batchnorm(model)
    return model


# --- config and keys ---------------------------------------------------------------------
def test_config_is_frozen_and_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        ModelConfig(variant="medium")
    with pytest.raises(ValidationError):
        ModelConfig(hidden=3)
    with pytest.raises(ValidationError):
        ModelConfig(lstm_dropout=1.0)
    config = ModelConfig()
    with pytest.raises(ValidationError):
        config.variant = "small"


def test_full_config_states_the_published_sizes() -> None:
    config = ModelConfig()
    assert config.stage_blocks == (3, 4, 6, 3, 2)
    assert config.stage_planes == (64, 128, 256, 512, 256)
    assert config.attention_in_features == 1808
    assert config.scene_face_channels == 2048
    assert config.encoder_channels == 512
    assert config.decoder_channels == (512, 256, 128, 1)
    assert config.attention_cells == 49


def test_full_state_dict_has_the_authors_keys_shapes_and_dtypes() -> None:
    specs = read_key_specs()
    state = VTD(ModelConfig(variant="full")).state_dict()
    assert len(specs) == 959
    assert list(state) == [spec.key for spec in specs]
    for spec in specs:
        assert tuple(state[spec.key].shape) == spec.shape, spec.key
        assert state[spec.key].dtype == spec.dtype, spec.key


def test_small_variant_has_the_same_keys_with_fewer_blocks() -> None:
    full_keys = {spec.key for spec in read_key_specs()}
    small = VTD(SMALL)
    small_keys = set(small.state_dict())
    assert small_keys < full_keys
    assert sum(p.numel() for p in small.parameters()) < 0.1 * 99_473_505


def test_fresh_initialisation_follows_the_authors() -> None:
    torch.manual_seed(0)
    model = VTD(SMALL)
    for conv in (model.conv1_scene, model.layer3_face[0].conv2, model.deconv1, model.deconv2):
        fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels
        assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
    bound = 1 / math.sqrt(model.config.encoder_channels)
    for parameter in model.convlstm_scene.parameters():
        assert parameter.abs().max().item() <= bound


# --- forward, encode, decode ---------------------------------------------------------------
def test_small_forward_shapes(small_model: VTD) -> None:
    images, heads, faces = random_frames(6)
    batch_sizes = torch.tensor([3, 2, 1])
    with torch.no_grad():
        heatmap, inout, state = small_model(images, heads, faces, batch_sizes=batch_sizes)
        encoded = small_model.encode(images, heads, faces)
    channels = SMALL.encoder_channels
    assert heatmap.shape == (6, 1, 64, 64)
    assert inout.shape == (6, 1)
    assert state.h.shape == state.c.shape == (2, 3, channels, 7, 7)
    assert isinstance(encoded, EncodedFrames)
    assert encoded.scene.shape == (6, channels, 7, 7)
    assert encoded.inout.shape == (6, 49)


def test_forward_equals_decode_of_encode(small_model: VTD) -> None:
    images, heads, faces = random_frames(5, seed=1)
    batch_sizes = [2, 2, 1]
    state = LSTMState(torch.randn(2, 2, 128, 7, 7), torch.randn(2, 2, 128, 7, 7))
    with torch.no_grad():
        direct = small_model(images, heads, faces, state=state, batch_sizes=batch_sizes)
        halves = small_model.decode(small_model.encode(images, heads, faces), state, batch_sizes)
    for a, b in zip(direct[:2], halves[:2], strict=True):
        assert torch.equal(a, b)
    assert torch.equal(direct[2].h, halves[2].h) and torch.equal(direct[2].c, halves[2].c)


def test_bad_inputs_give_clear_errors(small_model: VTD) -> None:
    images, heads, faces = random_frames(3)
    with torch.no_grad():
        with pytest.raises(ValueError, match="sum to 4"):
            small_model(images, heads, faces, batch_sizes=[2, 2])
        with pytest.raises(ValueError, match="must not increase"):
            small_model(images, heads, faces, batch_sizes=[1, 2])
        with pytest.raises(ValueError, match="LSTM state"):
            small_model(
                images, heads, faces, state=LSTMState.zeros(2, 3, 128, 7), batch_sizes=[2, 1]
            )
        with pytest.raises(ValueError, match="head_channels"):
            small_model(images, heads[:, :, :100], faces, batch_sizes=[3])


# --- packed ConvLSTM semantics --------------------------------------------------------------
def test_convlstm_with_1x1_kernels_equals_torch_packed_lstm() -> None:
    """A 1x1 ConvLSTM on 1x1 maps is an LSTM: compare with torch.nn.LSTM on packed input."""
    torch.manual_seed(0)
    lengths = [4, 3, 3, 1]
    reference = nn.LSTM(input_size=5, hidden_size=6, num_layers=2).double().eval()
    ours = ConvLSTM(5, 6, kernel_size=1, num_layers=2).double().eval()
    with torch.no_grad():
        for name, value in reference.named_parameters():
            target = getattr(ours, name)
            target.copy_(value.reshape(target.shape))
    padded = torch.randn(max(lengths), len(lengths), 5, dtype=torch.float64)
    packed = pack_padded_sequence(padded, torch.tensor(lengths))
    h0 = torch.randn(2, len(lengths), 6, dtype=torch.float64)
    c0 = torch.randn(2, len(lengths), 6, dtype=torch.float64)
    with torch.no_grad():
        expected, (h_n, c_n) = reference(packed, (h0, c0))
        output, state = ours(
            packed.data[..., None, None],
            packed.batch_sizes,
            LSTMState(h0[..., None, None], c0[..., None, None]),
        )
    torch.testing.assert_close(output[..., 0, 0], expected.data, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state.h[..., 0, 0], h_n, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state.c[..., 0, 0], c_n, rtol=1e-12, atol=1e-12)


def test_state_carried_across_chunks_equals_one_call() -> None:
    torch.manual_seed(0)
    lstm = ConvLSTM(4, 3, kernel_size=3, num_layers=2).double().eval()
    batch_sizes = [3, 3, 2, 1, 1]  # lengths 5, 3, 2
    frames = torch.randn(sum(batch_sizes), 4, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        whole, whole_state = lstm(frames, batch_sizes)
        first, state = lstm(frames[:8], batch_sizes[:3])  # time steps 0-2
        # sequence 2 ends in the first chunk; its final state is row 2 of the first state
        torch.testing.assert_close(state.h[:, 2], whole_state.h[:, 2])
        torch.testing.assert_close(state.c[:, 2], whole_state.c[:, 2])
        state = state.cut(min(batch_sizes[3], batch_sizes[2]))
        second, last_state = lstm(frames[8:], batch_sizes[3:], state)
    torch.testing.assert_close(torch.cat((first, second)), whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last_state.h, whole_state.h[:, :1])
    torch.testing.assert_close(last_state.c, whole_state.c[:, :1])


def test_sequences_in_a_batch_do_not_interact() -> None:
    torch.manual_seed(0)
    lstm = ConvLSTM(4, 3, kernel_size=3, num_layers=2).double().eval()
    frames = torch.randn(5, 4, 5, 5, dtype=torch.float64)  # lengths 3 and 2: [2, 2, 1]
    with torch.no_grad():
        batched, state = lstm(frames, [2, 2, 1])
        alone, alone_state = lstm(frames[[1, 3]], [1, 1])
    torch.testing.assert_close(batched[[1, 3]], alone, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(state.h[:, 1:2], alone_state.h, rtol=1e-12, atol=1e-12)


def test_lstm_state_helpers() -> None:
    state = LSTMState.zeros(2, 4, 3, 7, dtype=torch.float64)
    assert state.h.shape == (2, 4, 3, 7, 7) and state.h.dtype == torch.float64
    h = torch.arange(8.0).reshape(1, 4, 2, 1, 1).requires_grad_()
    state = LSTMState(h, torch.zeros_like(h))
    cut = state.cut(2)
    assert cut.batch_size == 2 and torch.equal(cut.h, state.h[:, :2])
    assert not state.detach().h.requires_grad
    with pytest.raises(ValueError, match="cut"):
        state.cut(5)


# --- dropout and the quirk -------------------------------------------------------------------
def test_dropout_between_lstm_layers_only_in_training() -> None:
    torch.manual_seed(0)
    model = VTD(SMALL)
    no_dropout = VTD(SMALL.model_copy(update={"lstm_dropout": 0.0}))
    no_dropout.load_state_dict(model.state_dict())
    encoded = EncodedFrames(torch.rand(4, 128, 7, 7), torch.rand(4, 49))
    with torch.no_grad():
        bn_eval(model)
        torch.manual_seed(1)
        train_a = model.decode(encoded, None, [2, 2])[0]
        torch.manual_seed(2)
        train_b = model.decode(encoded, None, [2, 2])[0]
        evaluated = model.eval().decode(encoded, None, [2, 2])[0]
        reference = bn_eval(no_dropout).decode(encoded, None, [2, 2])[0]
    assert not torch.allclose(train_a, train_b)
    assert torch.equal(evaluated, reference)


def test_quirk_switch_changes_single_frame_outputs_and_nothing_else() -> None:
    torch.manual_seed(0)
    with_quirk = VTD(SMALL).eval()
    randomise_batchnorm(with_quirk)
    without = VTD(SMALL.model_copy(update={"single_frame_bn_quirk": False})).eval()
    without.load_state_dict(with_quirk.state_dict())
    images, heads, faces = random_frames(2, seed=3)
    with torch.no_grad():
        two_on = with_quirk(images, heads, faces, batch_sizes=[2])
        two_off = without(images, heads, faces, batch_sizes=[2])
        one_on = with_quirk(images[:1], heads[:1], faces[:1], batch_sizes=[1])
        one_off = without(images[:1], heads[:1], faces[:1], batch_sizes=[1])
    assert torch.equal(two_on[0], two_off[0]) and torch.equal(two_on[1], two_off[1])
    assert not torch.allclose(one_on[0], one_off[0])
    assert not torch.allclose(one_on[1], one_off[1])
    # without the quirk a frame's output does not depend on the other frames of the call
    torch.testing.assert_close(one_off[0][0], two_off[0][0], rtol=1e-4, atol=1e-5)


# --- the published split -----------------------------------------------------------------------
def test_trainable_groups_and_frozen_parameters_follow_the_published_recipe() -> None:
    model = VTD(SMALL)
    names = {id(p): name for name, p in model.named_parameters()}
    groups = model.trainable_groups(lr=1e-4)
    assert [group["lr"] for group in groups] == [1e-4, pytest.approx(5e-4)]
    at_lr = {names[id(p)].split(".")[0] for p in groups[0]["params"]}
    assert at_lr == {"convlstm_scene", "deconv1", "deconv2", "deconv3", "conv4"}
    assert {names[id(p)] for p in groups[1]["params"]} == {"fc_inout.weight", "fc_inout.bias"}
    frozen = {names[id(p)] for p in model.frozen_parameters()}
    trained = {names[id(p)] for group in groups for p in group["params"]}
    assert frozen.isdisjoint(trained) and frozen | trained == set(names.values())
    assert {name.split(".")[0] for name in frozen} >= {
        "conv1_scene",
        "layer5_face",
        "attn",
        "compress_conv1",
        "compress_bn2_inout",
    }


def test_trained_part_gets_gradients_through_decode_alone() -> None:
    torch.manual_seed(0)
    model = bn_eval(VTD(SMALL))
    images, heads, faces = random_frames(4, seed=4)
    with torch.no_grad():
        encoded = model.encode(images, heads, faces)
    heatmap, inout, _ = model.decode(encoded, None, [2, 2])
    (heatmap.square().mean() + inout.mean()).backward()
    for group in model.trainable_groups(lr=1.0):
        for parameter in group["params"]:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.conv1_scene.parameters())
