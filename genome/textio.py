"""Reading user files safely: bounded UTF-8 text and bounded YAML (``yaml.safe_load`` semantics).

Campaign files, genome files and bundle manifests are small and hand-written. A file that is not (a directory,
a FIFO, a 10 GB log, a binary, a Latin-1 file, an unreadable file) or YAML built to explode (a "billion laughs"
alias bomb, thousands of nested brackets) must end in one short message naming the file, never in a hang,
a huge message or a traceback:

- :func:`read_text` reads a *regular* file of at most ``max_bytes`` bytes (default :data:`MAX_FILE_BYTES`)
  and decodes it as UTF-8, naming the first bad byte otherwise;
- :func:`parse_yaml` parses with PyYAML's safe loader, but first measures the document with every alias
  expanded: more than :data:`MAX_YAML_NODES` nodes, or nesting deeper than :data:`MAX_YAML_DEPTH`, is refused
  before anything walks the expanded value (PyYAML itself shares aliased objects, so the bomb goes off later,
  in validation or in ``repr``); a key given twice in one mapping is refused too (PyYAML would silently keep
  the last).

Both raise :class:`FileReadError` (a ``ValueError``) whose message starts with the file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_FILE_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "FileReadError", "load_yaml_file", "parse_yaml",
           "read_text"]

MAX_FILE_BYTES = 4 * 2**20  # a campaign or genome file is a few kB
MAX_YAML_NODES = 200_000  # scalars, lists and mappings after alias expansion
MAX_YAML_DEPTH = 100  # nested lists / mappings


class FileReadError(ValueError):
    """A user file that cannot be read as bounded UTF-8 text or bounded YAML; the message names the file."""


def read_text(path: str | Path, *, what: str = "file", max_bytes: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of the regular file ``path`` (at most ``max_bytes`` bytes), else :class:`FileReadError`.

    ``what`` names the expected file in messages (e.g. ``"campaign file"``).
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileReadError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise FileReadError(f"{path}: cannot be read ({_os_reason(exc)})") from None
    if stat.S_ISDIR(mode):
        raise FileReadError(f"{path} is a directory, not a {what}")
    if not stat.S_ISREG(mode):
        raise FileReadError(f"{path} is not a regular file (a device, FIFO or socket): give a {what} on disk")
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise FileReadError(f"{path}: cannot be read ({_os_reason(exc)})") from None
    if len(data) > max_bytes:
        raise FileReadError(f"{path}: larger than {max_bytes:,} bytes; a {what} is a small text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileReadError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                            f"a {what} must be saved as UTF-8") from None


def parse_yaml(text: str, *, source: str, max_nodes: int = MAX_YAML_NODES, max_depth: int = MAX_YAML_DEPTH) -> Any:
    """``yaml.safe_load(text)``, refusing documents whose alias expansion or nesting is out of bounds."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as exc:
            raise FileReadError(f"{source}: malformed YAML: {_one_line(exc)}") from None
        except RecursionError:
            raise FileReadError(f"{source}: YAML nested too deeply (more than {max_depth} levels)") from None
        if node is None:
            return None
        _check_size(node, source=source, max_nodes=max_nodes, max_depth=max_depth)
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as exc:
            raise FileReadError(f"{source}: malformed YAML: {_one_line(exc)}") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path, *, what: str = "file", max_bytes: int = MAX_FILE_BYTES) -> Any:
    """:func:`read_text` then :func:`parse_yaml`."""
    return parse_yaml(read_text(path, what=what, max_bytes=max_bytes), source=str(path))


def _check_size(root: yaml.Node, *, source: str, max_nodes: int, max_depth: int) -> None:
    """Count the nodes of ``root`` with aliases expanded (each shared node counted once per use), iteratively
    and memoised, so a bomb is measured in time linear in the file, not in its expansion."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes and not children_done:
            continue
        children = _children(node)
        if not children_done and isinstance(node, yaml.MappingNode):
            _check_unique_keys(node, source=source)
        if not children_done:
            if key in on_path:
                raise FileReadError(f"{source}: YAML with a recursive alias (a value that contains itself)")
            on_path.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in on_path:
                    raise FileReadError(f"{source}: YAML with a recursive alias (a value that contains itself)")
                if id(child) not in sizes:
                    stack.append((child, False))
            continue
        on_path.discard(key)
        sizes[key] = 1 + sum(sizes[id(c)] for c in children)
        depths[key] = 1 + max((depths[id(c)] for c in children), default=0)
        if sizes[key] > max_nodes:
            raise FileReadError(f"{source}: YAML too large once its aliases (*name) are expanded: more than "
                                f"{max_nodes:,} values; write the values out, or use fewer aliases")
        if depths[key] > max_depth:
            raise FileReadError(f"{source}: YAML nested too deeply (more than {max_depth} levels)")


def _check_unique_keys(node: yaml.MappingNode, *, source: str) -> None:
    """A key written twice in one mapping (PyYAML silently keeps the last: a second ``budget:`` would
    override the first without a word)."""
    seen: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        line = key.start_mark.line + 1
        if (key.tag, key.value) in seen:
            raise FileReadError(f"{source}: line {line}: key {key.value[:100]!r} is given twice in the same mapping "
                                f"(first on line {seen[(key.tag, key.value)]}); keep one")
        seen[(key.tag, key.value)] = line


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


def _os_reason(exc: OSError) -> str:
    return f"[Errno {exc.errno}] {exc.strerror}" if exc.strerror else f"{type(exc).__name__}: {exc}"
