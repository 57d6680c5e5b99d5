"""Reference checkpoints: the golden test (ctmevo reproduces the reference's own outputs after import), the
state-dict mapping both ways, and clear errors for what cannot be imported. Fixtures: fixtures/reference/."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import ctm
from ctm.bundle import load_bundle
from ctm.reference import ReferenceFormatError, from_reference, genome_from_args, read_checkpoint
from ctm.reference_weights import to_ctmevo, to_reference

FIXTURES = Path(__file__).parent / "fixtures" / "reference"
CASES = ("random_glu", "firstlast_unet", "pairing_unet")
TOLERANCE = 1e-5


def fixture(name: str) -> tuple[dict, dict, dict]:
    folder = FIXTURES / name
    args = json.loads((folder / "args.json").read_text())
    return args, load_file(folder / "reference_state_dict.safetensors"), load_file(folder / "expected.safetensors")


class NotAllowed:
    """An arbitrary class: pickled by reference, so weights_only loading must refuse it."""


def reference_checkpoint(path: Path, state: dict, args: dict, **extra) -> Path:
    """A checkpoint in the layout the reference's parity training saves (argparse args, NumPy RNG state and
    NumPy metric values, torch and Python RNG states)."""
    torch.save({"model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": []},
                "iteration": 19, "train_losses": [np.float64(0.69)], "test_accuracies": [np.array([0.5, 0.6])],
                "args": argparse.Namespace(**args), "torch_rng_state": torch.get_rng_state(),
                "numpy_rng_state": np.random.RandomState(0).get_state(), "random_rng_state": random.getstate(),
                **extra}, path)
    return path


@pytest.mark.parametrize("name", CASES)
def test_imported_reference_checkpoint_reproduces_the_reference_outputs(name: str, tmp_path: Path) -> None:
    args, state, expected = fixture(name)
    checkpoint = reference_checkpoint(tmp_path / "checkpoint_19.pt", state, args)
    bundle = ctm.import_reference(checkpoint, tmp_path / "bundle")
    model, genome, task = load_bundle(bundle)
    assert (genome.d_model, genome.ticks, genome.sync_select) == (args["d_model"], args["iterations"],
                                                                 args["neuron_select_type"])
    tokens = (expected["inputs"] == -1).long()  # ctmevo's parity tokens: 1 where x = −1
    with torch.no_grad():
        predictions, certainties = model(tokens)
    torch.testing.assert_close(predictions, expected["predictions"], rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(certainties, expected["certainties"], rtol=0, atol=TOLERANCE)
    # the bundle's task is the reference's parity, with the same targets for the same inputs
    assert task.shape.out_positions == args["parity_sequence_length"]
    assert torch.equal((tokens.cumsum(1) % 2), expected["targets"])


def test_unet_widths_of_an_imported_model_are_the_reference_truncated_widths(tmp_path: Path) -> None:
    args, state, _ = fixture("firstlast_unet")
    checkpoint = reference_checkpoint(tmp_path / "c.pt", state, args)
    model, _, _ = load_bundle(ctm.import_reference(checkpoint, tmp_path / "b"))
    assert model.spec.synapse_widths == [20, 18, 17, 16]  # int(linspace(20, 16, 4)); rounding would give 19
    assert [layer[1].out_features for layer in model.synapses.down] == [18, 17, 16]


@pytest.mark.parametrize("name", CASES)
def test_state_dict_mapping_round_trips_exactly(name: str) -> None:
    args, state, _ = fixture(name)
    ref = from_reference(state, args)
    spec = ctm.build_model(ref.genome, ref.task_spec).spec
    back = to_reference(ref.state_dict, spec)
    assert set(back) == set(state)
    for key, value in state.items():
        assert torch.equal(back[key], value.to(back[key].dtype)), key
    assert to_ctmevo(back, spec).keys() == ref.state_dict.keys()


def test_export_writes_a_checkpoint_that_imports_back_to_the_same_model(tmp_path: Path) -> None:
    args, state, expected = fixture("pairing_unet")
    bundle = ctm.import_reference(reference_checkpoint(tmp_path / "c.pt", state, args), tmp_path / "bundle")
    exported = ctm.export_reference(bundle, tmp_path / "exported.pt")
    again = read_checkpoint(exported)
    assert set(again["model_state_dict"]) == set(state)
    assert all(torch.equal(again["model_state_dict"][k], v) for k, v in state.items())
    assert genome_from_args(again["args"]) == genome_from_args(args)
    model, _, _ = load_bundle(ctm.import_reference(exported, tmp_path / "bundle2"))
    with torch.no_grad():
        predictions, _ = model((expected["inputs"] == -1).long())
    torch.testing.assert_close(predictions, expected["predictions"], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(("change", "message"), [
    ({"backbone_type": "resnet34-2"}, "backbone_type = 'resnet34-2'"),
    ({"positional_embedding_type": "none"}, "positional_embedding_type = 'none'"),
    ({"do_normalisation": True}, "do_normalisation = True"),
    ({"dataset": "mazes-large"}, "dataset = 'mazes-large'"),
    ({"model_type": "lstm"}, "model_type = 'lstm'"),
    ({"heads": 3}, "heads = 3"),
    ({"heads": 0}, "heads = 0"),
])
def test_unsupported_reference_options_are_named(change: dict, message: str) -> None:
    args, _, _ = fixture("random_glu")
    with pytest.raises(ReferenceFormatError, match=message):
        genome_from_args({**args, **change})


def test_dropout_nlm_follows_dropout_as_in_the_reference() -> None:
    args, _, _ = fixture("firstlast_unet")
    genome, _ = genome_from_args(args)  # the parity script has no dropout_nlm option
    assert genome.dropout == genome.dropout_nlm == 0.1
    assert genome_from_args({**args, "dropout_nlm": 0.0})[0].dropout_nlm == 0.0


def test_missing_or_extra_tensors_are_named(tmp_path: Path) -> None:
    args, state, _ = fixture("random_glu")
    broken = {k: v for k, v in state.items() if k != "q_proj.weight"} | {"extra.weight": torch.zeros(1)}
    with pytest.raises(ReferenceFormatError, match=r"missing \['q_proj.weight'\].*unexpected \['extra.weight'\]"):
        ctm.load_reference_checkpoint(reference_checkpoint(tmp_path / "c.pt", broken, args))


def test_pickled_objects_beyond_the_allowlist_are_refused(tmp_path: Path) -> None:
    args, state, _ = fixture("random_glu")
    path = reference_checkpoint(tmp_path / "c.pt", state, args, callback=NotAllowed())
    with pytest.raises(ReferenceFormatError, match=r"pickles the Python object .*NotAllowed"):
        ctm.load_reference_checkpoint(path)
    torch.save({"model_state_dict": state}, tmp_path / "no_args.pt")
    with pytest.raises(ReferenceFormatError, match="'args'"):
        ctm.load_reference_checkpoint(tmp_path / "no_args.pt")
    with pytest.raises(ReferenceFormatError, match="no such"):
        ctm.load_reference_checkpoint(tmp_path / "absent.pt")


def test_models_the_reference_cannot_express_are_not_exported(tmp_path: Path) -> None:
    args, state, _ = fixture("random_glu")
    ref = from_reference(state, args)
    learned = ref.genome.replace(positional_embedding="learned")
    spec = ctm.build_model(learned, ref.task_spec).spec
    with pytest.raises(ReferenceFormatError, match="positional_embedding = 'learned'"):
        to_reference(ctm.build_model(learned, ref.task_spec).state_dict(), spec)


def _zip_with_pickle(path: Path, payload: bytes) -> Path:
    """A torch zip checkpoint whose pickle is ``payload`` (for opcodes torch.save never writes)."""
    import io
    import zipfile

    buf = io.BytesIO()
    torch.save({"a": 1}, buf)
    source = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(path, "w") as out:
        for item in source.infolist():
            out.writestr(item.filename, payload if item.filename.endswith("data.pkl") else source.read(item.filename))
    return path


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_a_refused_checkpoint_says_why_in_one_line_without_colours_or_weights_only_false(tmp_path: Path) -> None:
    import argparse

    from ctm.reference import genome_from_args, read_checkpoint

    torch.save({"model_state_dict": {}, "args": _RunsCode()}, tmp_path / "code.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "model.pt")
    _zip_with_pickle(tmp_path / "opcode.pt", b"\x80\x02(i__main__\nX\n.")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    expected = {"code.pt": "would call posix.system", "model.pt": "pickles the Python object torch.nn.modules.linear"
                ".Linear", "opcode.pt": "pickle opcode INST (105)", "junk.pt": "not a torch checkpoint"}
    for name, cause in expected.items():
        with pytest.raises(ReferenceFormatError) as caught:
            read_checkpoint(tmp_path / name)
        message = str(caught.value)
        assert cause in message and "\n" not in message and "\x1b" not in message, message
        assert "weights_only" not in message.replace("weights_only=True", ""), message
    image = argparse.Namespace(**{**fixture("random_glu")[0], "backbone_type": "resnet18-4", "out_dims": 10})
    with pytest.raises(ReferenceFormatError, match=r"maze or image-classification model.*parity checkpoints"):
        genome_from_args(image)
