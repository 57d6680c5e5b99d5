"""Evaluation-state blobs: the safetensors layout, round trips, weights-only blobs and clear errors."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from ctm_testutil import tiny
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ctm import EvalBudget, TaskSpec, build_model, evaluate, make_task
from ctm.bundle import load_bundle, weights_bytes, write_bundle
from ctm.eval_state import (
    RESERVED,
    STATE_FORMAT,
    EvalState,
    EvalStateError,
    load_weights,
    pack_state,
    read_metadata,
    unpack_state,
    weights_only,
)

PARITY = TaskSpec(name="parity", params={"length": 4})


@pytest.fixture(scope="module")
def state_blob() -> bytes:
    result = evaluate(tiny(dropout=0.1), PARITY, EvalBudget(steps=3, val_samples=8, warmup_steps=2), seed=1,
                      want_checkpoint=True)
    assert result.ok and result.checkpoint is not None
    return result.checkpoint


def test_layout_weights_under_model_keys_the_rest_reserved(state_blob: bytes) -> None:
    genome = tiny(dropout=0.1)
    own = build_model(genome, make_task(PARITY)).state_dict()
    tensors = st_load(state_blob)
    assert {k for k in tensors if not k.startswith(RESERVED)} == set(own)
    assert set(weights_only(state_blob)) == set(own)
    meta = read_metadata(state_blob)
    assert meta["format"] == STATE_FORMAT and meta["version"] == "1" and meta["genome_hash"] == genome.hash
    assert meta["steps"] == "3" and meta["schedule_step"] == "3"
    assert json.loads(meta["meta"])["task"] == PARITY.to_dict() and json.loads(meta["meta"])["seed"] == 1
    state = unpack_state(state_blob)
    assert state.continues and state.steps == 3 and len(state.losses) == 3 and state.rng["torch"].dtype == torch.uint8


def test_optimizer_state_round_trips_into_adamw(state_blob: bytes) -> None:
    genome = tiny(dropout=0.1)
    model = build_model(genome, make_task(PARITY))
    state = unpack_state(state_blob)
    load_weights(model, state.weights)
    optimizer = torch.optim.AdamW(model.parameters(), lr=genome.learning_rate, weight_decay=0.0)
    optimizer.load_state_dict(state.optimizer)
    restored = optimizer.state_dict()
    assert restored["param_groups"][0]["betas"] == (0.9, 0.999)
    assert restored["param_groups"][0]["initial_lr"] == genome.learning_rate
    assert len(restored["state"]) == len(list(model.parameters()))
    for values in restored["state"].values():
        assert float(values["step"]) == 3.0 and values["exp_avg"].shape == values["exp_avg_sq"].shape
    again = unpack_state(pack_state(state))
    assert pack_state(again) == pack_state(state)
    assert all(torch.equal(again.optimizer["state"][i]["exp_avg"], state.optimizer["state"][i]["exp_avg"])
               for i in state.optimizer["state"])


def test_weights_only_blobs_are_accepted_as_fresh_starts() -> None:
    genome = tiny()
    weights = build_model(genome, make_task(PARITY)).state_dict()
    plain = unpack_state(st_save(weights))
    assert not plain.continues and plain.steps == 0 and plain.genome_hash is None and set(plain.weights) == set(weights)
    tagged = unpack_state(weights_bytes(weights, genome_hash=genome.hash))  # a bundle's weights.safetensors
    assert tagged.genome_hash == genome.hash and not tagged.continues


def test_bundles_accept_a_full_state_as_weights(state_blob: bytes, tmp_path) -> None:
    out = write_bundle(tmp_path / "b", genome=tiny(dropout=0.1), task_spec=PARITY, weights=state_blob)
    loaded = load_bundle(out).model.state_dict()
    expected = weights_only(state_blob)
    assert set(loaded) == set(expected) and all(torch.equal(loaded[k], expected[k]) for k in expected)


def _blob_with_metadata(metadata: dict[str, str]) -> bytes:
    return st_save({"w": torch.zeros(2)}, metadata=metadata)


@pytest.mark.parametrize(("data", "message"), [
    (b"not a safetensors file at all", "not a readable safetensors"),
    (b"", "not a readable safetensors"),
    (_blob_with_metadata({"format": "gguf"}), r"format = 'gguf': allowed is 'ctmevo-eval-state'"),
    (_blob_with_metadata({"format": STATE_FORMAT, "version": "99"}), "version = 99.*newer ctmevo"),
    (_blob_with_metadata({"format": STATE_FORMAT, "version": "1", "steps": "x"}), "metadata steps = 'x'"),
    (st_save({RESERVED + "losses": torch.zeros(1)}), "reserved tensors"),
])
def test_unreadable_or_unknown_blobs_are_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(EvalStateError, match=message):
        unpack_state(data)


def test_packing_refuses_reserved_weight_keys() -> None:
    with pytest.raises(EvalStateError, match="allowed are keys not starting with"):
        pack_state(EvalState(weights={RESERVED + "x": torch.zeros(1)}))


def test_metadata_is_read_from_the_header_only(state_blob: bytes) -> None:
    (length,) = struct.unpack("<Q", state_blob[:8])
    assert read_metadata(state_blob[:8 + length])["format"] == STATE_FORMAT
    assert read_metadata(st_save({"w": torch.zeros(1)})) == {}
