"""Sub-package exports that import their module on first use (PEP 562 `__getattr__`).

A trial process imports `vtd.sweep.execute.child` and `vtd.sweep.plan.faults`, which runs the
`__init__` of `vtd.sweep.execute` and `vtd.sweep.plan`; those must not import `session`,
`worker` or `config`, which load optuna and mlflow. So a sub-package lists its public names
here and each is imported from its module only when someone asks the package for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for `package`, from {module: its public names}."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(home)

    return sorted(home), __getattr__, __dir__
