"""Lazy package exports (PEP 562): `from vtd.model import VTD` still works, but importing
`vtd.model.config` for a pydantic type no longer loads torch through the package's
`__init__`. That keeps `vtd-sweep status`, `--help` and `--dry-run` free of torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, importing `exports[name]` (a submodule)
    the first time `name` is read."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value  # later reads skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*importlib.import_module(package).__dict__, *exports})

    return __getattr__, __dir__


def by_module(package: str, modules: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """{name: its module's dotted path} from {submodule of `package`: its public names}."""
    return {name: f"{package}.{module}" for module, names in modules.items() for name in names}


def lazy_package(
    package: str, modules: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for `package`, whose public names are
    {submodule: its names} (`by_module`), each loaded on first use (`lazy_exports`)."""
    exports = by_module(package, modules)
    return (sorted(exports), *lazy_exports(package, exports))
