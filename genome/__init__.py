"""Genomes that encode Continuous Thought Machine variants (no torch, nothing else of ours imported)."""

from genome.codec import VectorCodec
from genome.cost import BackboneSpec, CostEstimate, ModelSpec, TaskShape, estimate, resolve
from genome.errors import GeneProblem, GenomeError, SchemaError
from genome.genes import GENE_BY_NAME, GENE_NAMES, GENES
from genome.genome import SCHEMA_VERSION, Genome
from genome.io import from_json, from_yaml, load, save, to_json, to_yaml
from genome.operators import crossover, distance, mutate
from genome.presets import PRESETS, Preset, preset_names
from genome.space import GenomeSpace, RepairError
from genome.textio import FileReadError

__all__ = [
    "GENES", "GENE_BY_NAME", "GENE_NAMES", "PRESETS", "SCHEMA_VERSION", "BackboneSpec", "CostEstimate",
    "FileReadError", "GeneProblem", "Genome", "GenomeError", "GenomeSpace", "ModelSpec", "Preset", "RepairError",
    "SchemaError", "TaskShape", "VectorCodec", "crossover", "distance", "estimate", "from_json", "from_yaml", "load",
    "mutate", "preset_names", "resolve", "save", "to_json", "to_yaml",
]
