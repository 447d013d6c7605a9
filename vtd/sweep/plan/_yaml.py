"""YAML reading that keeps where each key was written, for one-line errors naming the line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KeyPath = Sequence[str | int]


class YamlLocationError(ValueError):
    """Broken YAML: the message and the 1-based line where the parser stopped."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class YamlDocument:
    """The parsed data and its node tree (for line numbers)."""

    data: Any
    root: yaml.Node | None

    def line_of(self, path: KeyPath) -> int | None:
        """1-based line of the deepest part of `path` that is in the file (None: not even
        the first part)."""
        node = self.root
        line = None
        for key in path:
            child = _child(node, key)
            if child is None:
                break
            node = child
            line = node.start_mark.line + 1
        return line


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
                return value_node
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def _check_duplicate_keys(node: yaml.Node | None) -> None:
    # PyYAML keeps the last of two equal keys silently; a repeated key is a mistake to report.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise YamlLocationError(
                        f"key {key_node.value!r} is given twice", key_node.start_mark.line + 1
                    )
                seen.add(key_node.value)
            _check_duplicate_keys(value_node)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicate_keys(item)


def load_yaml(path: Path) -> YamlDocument:
    """Parse `path`; raises YamlLocationError (with the line) for broken YAML."""
    text = path.read_text(encoding="utf-8")
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        _check_duplicate_keys(root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context or "cannot be parsed"
        context = error.context_mark
        if error.context and context is not None and mark is not None and context.line != mark.line:
            problem += f" ({error.context} from line {context.line + 1})"
        raise YamlLocationError(
            f"YAML syntax error: {problem}", None if mark is None else mark.line + 1
        ) from None
    except yaml.YAMLError as error:
        raise YamlLocationError(f"YAML error: {error}", None) from None
    finally:
        loader.dispose()
    return YamlDocument(data=data, root=root)


def format_key_path(path: KeyPath) -> str:
    """`search_space["model.lstm_dropout"][1]` style: dotted keys, indexes in brackets."""
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif "." in key or " " in key:
            text += f'["{key}"]'
        else:
            text += f".{key}" if text else key
    return text
