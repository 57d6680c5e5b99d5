import json
import subprocess
import sys

import pytest
import yaml
from hypothesis import given, settings

from genome import Genome, GenomeError, SchemaError, from_json, from_yaml, to_json, to_yaml
from genome.genome import SCHEMA_VERSION
from tests.genome.strategies import space_and_genome

# Computed once and written down: a change to hashing (or to a default) must be deliberate. Schema 2 made the
# paper's rotational positions the default, which changed the default genome's hash; the schema-1 hashes are
# those of the same genes with learned positions, and must never change (bundles and campaigns key on them).
DEFAULT_HASH = "2ea1ac96df152d4a"
PAPER_PARITY_HASH = "dd15740dff5a725f"
SCHEMA1_DEFAULT_HASH = "6bd05f4ae1e701bd"
SCHEMA1_PAPER_PARITY_HASH = "0d840353677025ec"


def paper_parity() -> Genome:
    return Genome(ticks=75, memory_length=25, d_model=1024, d_input=512, heads=8, synapse_depth=1,
                  n_sync_out=32, n_sync_action=32, sync_select="random", nlm_hidden=16, learning_rate=1e-4)


def test_hash_is_a_known_literal():
    assert Genome().hash == DEFAULT_HASH
    assert paper_parity().hash == PAPER_PARITY_HASH
    assert Genome.preset("parity-paper") == paper_parity()


def test_schema1_genomes_keep_their_hash():
    """A gene added in schema 2 enters the hash only away from its schema-1 meaning (learned positions)."""
    assert Genome(positional_embedding="learned").hash == SCHEMA1_DEFAULT_HASH
    assert paper_parity().replace(positional_embedding="learned").hash == SCHEMA1_PAPER_PARITY_HASH
    legacy = {k: v for k, v in Genome(positional_embedding="learned").to_dict().items()
              if k != "positional_embedding"}
    text = yaml.safe_dump({"schema_version": 1, "hash": SCHEMA1_DEFAULT_HASH, "genes": legacy})
    genome = from_yaml(text)  # upgraded to schema 2; the stated schema-1 hash is checked and still holds
    assert genome.positional_embedding == "learned" and genome.hash == SCHEMA1_DEFAULT_HASH


def test_dropout_nlm_follows_dropout_unless_given():
    assert Genome(dropout=0.2).dropout_nlm == 0.2
    assert Genome(dropout=0.2, dropout_nlm=0.0).dropout_nlm == 0.0
    assert Genome.from_dict({"dropout": 0.1}).dropout_nlm == 0.1
    assert from_yaml(f"schema_version: {SCHEMA_VERSION}\ngenes: {{dropout: 0.1}}\n").dropout_nlm == 0.1
    assert from_yaml("schema_version: 1\ngenes: {dropout: 0.1}\n").dropout_nlm == 0.0  # schema 1's default


def test_hash_is_stable_across_processes_and_hash_seeds():
    code = "from genome import Genome; print(Genome().hash)"
    for seed in ("0", "12345"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": ""}, cwd=".")
        assert out.stdout.strip() == DEFAULT_HASH


def test_equal_genes_equal_hash_and_types_are_normalised():
    assert Genome(ticks=25.0).hash == Genome().hash
    assert Genome(dropout=0.123456789).dropout == 0.1235
    assert Genome(ticks=26).hash != Genome().hash
    assert Genome(dropout=-0.0).hash == Genome(dropout=0.0).hash


def test_invalid_genome_names_every_problem():
    with pytest.raises(GenomeError) as err:
        Genome(ticks=0, heads=3, dropout=2.0, sync_select="dense")
    message = str(err.value)
    assert {p.gene for p in err.value.problems} == {"ticks", "heads", "dropout", "sync_select"}
    assert "ticks = 0: allowed is an integer in [1, 1000]" in message
    assert "'dense'" in message and "first-last" in message


@pytest.mark.parametrize(
    ("genes", "gene", "allowed"),
    [
        ({"heads": 8, "d_input": 12}, "heads", "a divisor of d_input = 12"),
        ({"sync_select": "first-last", "d_model": 64, "n_sync_out": 40, "n_sync_action": 40},
         "n_sync_out + n_sync_action", "at most d_model = 64"),
        ({"sync_select": "random", "d_model": 32, "n_sync_out": 33}, "n_sync_out", "at most d_model = 32"),
        ({"sync_select": "random-pairing", "n_sync_out": 8, "n_sync_action": 4, "n_self_pairs": 4},
         "n_self_pairs", "less than 4"),
        ({"sync_select": "random-pairing", "d_model": 4, "n_sync_out": 8, "n_sync_action": 2},
         "n_sync_out", "at most 6 distinct pairs"),
        ({"decay_init": "spread", "decay_init_max": 20.0, "decay_clamp": 15.0}, "decay_init_max", "at most"),
    ],
)
def test_cross_gene_constraints(genes, gene, allowed):
    with pytest.raises(GenomeError) as err:
        Genome(**genes)
    assert [p.gene for p in err.value.problems] == [gene]
    assert allowed in str(err.value)


def test_action_sync_of_zero_is_a_valid_genome():
    assert Genome(n_sync_action=0).n_sync_action == 0


def test_unknown_gene_and_wrong_type():
    with pytest.raises(GenomeError, match="tiks"):
        Genome.from_dict({"tiks": 3})
    with pytest.raises(GenomeError, match="memory_length = 'ten'"):
        Genome.from_dict({"memory_length": "ten"})
    with pytest.raises(GenomeError, match="decay_learned"):
        Genome.from_dict({"decay_learned": "yes"})


@settings(max_examples=150, deadline=None)
@given(space_and_genome())
def test_yaml_and_json_round_trip_exactly(pair):
    _, genome = pair
    assert from_yaml(to_yaml(genome)) == genome
    assert from_json(to_json(genome)) == genome
    assert from_yaml(to_yaml(genome)).hash == genome.hash


def test_written_files_list_every_gene_and_partial_files_take_defaults():
    doc = json.loads(to_json(Genome()))
    assert doc["schema_version"] == SCHEMA_VERSION and len(doc["genes"]) == len(Genome().to_dict())
    assert from_yaml(f"schema_version: {SCHEMA_VERSION}\ngenes: {{ticks: 30}}\n") == Genome(ticks=30)
    # a schema-1 file meant a model with learned positions (the upgrade fills in the gene schema 1 lacked)
    assert from_yaml("schema_version: 1\ngenes: {ticks: 30}\n") == Genome(ticks=30, positional_embedding="learned")


def test_newer_or_unknown_schema_fails_clearly():
    with pytest.raises(SchemaError, match="newer ctmevo"):
        from_yaml(f"schema_version: {SCHEMA_VERSION + 1}\ngenes: {{}}\n")
    with pytest.raises(SchemaError, match="cannot be read or upgraded"):
        from_yaml("schema_version: 0\ngenes: {}\n")


def test_older_schema_is_upgraded_when_an_upgrade_exists(monkeypatch):
    from genome import io

    monkeypatch.setattr(io, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(io.UPGRADES, SCHEMA_VERSION,
                        lambda genes: {k: v for k, v in genes.items() if k != "obsolete"})
    genome = io.from_yaml(f"schema_version: {SCHEMA_VERSION}\ngenes: {{ticks: 7, obsolete: 3}}\n")
    assert genome.ticks == 7


def test_edited_genes_with_a_stale_hash_are_rejected():
    text = to_yaml(Genome()).replace("ticks: 25", "ticks: 26")
    with pytest.raises(GenomeError, match="delete the hash line"):
        from_yaml(text)


def test_malformed_yaml_names_the_source():
    with pytest.raises(GenomeError, match=r"my\.yaml"):
        from_yaml("genes: [unclosed", source="my.yaml")
