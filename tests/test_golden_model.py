"""The forward pass equals the authors' (tests/data/golden/model_*.npz, README there).

Every input comes from the file itself (seed, lengths, chunk), so other files of the same
kind dropped into tests/data/golden/ run through the same test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from _golden_weights import (
    GOLDEN_DIR,
    chunk_ranges,
    golden_inputs,
    golden_state_dict,
    packed_batch_sizes,
)

from vtd.model import VTD, ModelConfig, load_checkpoint

GOLDEN_FILES = sorted(GOLDEN_DIR.glob("model_*.npz"))

# README tolerances, relative to the range of the stored array.
OUTPUT_TOLERANCE = 1e-9  # float64 outputs
STATE_TOLERANCE = 1e-5  # hidden states, stored as float32


def assert_close_to_range(actual: torch.Tensor, expected: np.ndarray, rel: float, name: str):
    actual_np = actual.detach().numpy()
    assert actual_np.shape == expected.shape, f"{name}: shape {actual_np.shape} != {expected.shape}"
    scale = float(np.ptp(expected)) or float(np.abs(expected).max()) or 1.0
    error = float(np.abs(actual_np - expected).max())
    assert error <= rel * scale, f"{name}: max error {error:.3g} > {rel:g} x range {scale:.3g}"


@pytest.fixture(scope="module")
def golden_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The README's deterministic weights, saved as an authors'-format checkpoint.

    The file holds 99M float64 numbers (800 MB): removed after use, since pytest keeps the
    temporary directories of its last runs.
    """
    path = tmp_path_factory.mktemp("golden") / "deterministic_weights.pt"
    torch.save({"model": golden_state_dict()}, path)
    yield path
    path.unlink()


@pytest.fixture(scope="module")
def golden_model(golden_checkpoint: Path) -> VTD:
    model = VTD(ModelConfig(variant="full")).double().eval()
    report = load_checkpoint(model, golden_checkpoint)
    assert report.missing == () and report.unexpected == ()
    return model


@pytest.mark.skipif(not GOLDEN_FILES, reason="no golden model files")
@pytest.mark.parametrize("golden_file", GOLDEN_FILES, ids=lambda p: p.name)
def test_forward_over_chunks_matches_golden(golden_model: VTD, golden_file: Path) -> None:
    golden = np.load(golden_file)
    lengths = np.asarray(golden["lengths"])
    batch_sizes = packed_batch_sizes(lengths)
    assert batch_sizes == [int(b) for b in golden["batch_sizes"]]
    inputs = golden_inputs(int(golden["seed"]), int(lengths.sum()))
    chunks = chunk_ranges(batch_sizes, int(golden["chunk"]))
    assert {k for k in golden.files if k.startswith("h_chunk")} == {
        f"h_chunk{i}" for i in range(len(chunks))
    }, "the file's stored states do not match the number of chunks"

    heatmaps, inouts = [], []
    state = None
    previous_sizes: list[int] | None = None
    with torch.no_grad():
        for index, (sizes, start, stop) in enumerate(chunks):
            if state is not None and previous_sizes is not None:
                state = state.cut(min(sizes[0], previous_sizes[-1]))
            heatmap, inout, state = golden_model(
                inputs.images[start:stop],
                inputs.head_channels[start:stop],
                inputs.faces[start:stop],
                state=state,
                batch_sizes=torch.tensor(sizes),
            )
            heatmaps.append(heatmap)
            inouts.append(inout)
            previous_sizes = sizes
            assert_close_to_range(state.h, golden[f"h_chunk{index}"], STATE_TOLERANCE, f"h{index}")
            assert_close_to_range(state.c, golden[f"c_chunk{index}"], STATE_TOLERANCE, f"c{index}")

    assert_close_to_range(torch.cat(heatmaps), golden["deconv"], OUTPUT_TOLERANCE, "deconv")
    assert_close_to_range(torch.cat(inouts), golden["inout"], OUTPUT_TOLERANCE, "inout")
