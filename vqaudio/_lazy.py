"""Lazy package exports (PEP 562): a package names its public objects without importing their modules.

A package whose modules need torch (``vqaudio``, ``vqaudio.data``, ``vqaudio.eval``) declares::

    __getattr__, __dir__ = lazy_exports(__name__, {"vqaudio.checkpoint": ("load_model",), ...})

so that importing one of its light submodules (``vqaudio.codec.bitstream``, ``vqaudio.data.labels``,
``vqaudio.eval.report``) does not import torch; the first access to a name imports its module.
The package still lists the names in ``__all__`` and imports them under ``if TYPE_CHECKING:`` for
linters and type checkers.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: the package's ``__name__``.
        exports: ``{module: names}``, each name an attribute of that (fully qualified) module.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)  # later look-ups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
