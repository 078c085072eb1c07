"""Public names of a package loaded with their submodule on first use (PEP 562), so that the
viewer's window paints before pydicom, SimpleITK and pynetdicom have loaded."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence


def lazy_names(
    package: str, sources: Mapping[str, str], submodules: Sequence[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, which offers each name of `sources` (name →
    the submodule defining it) and the `submodules` themselves, each imported when first asked."""

    def __getattr__(name: str) -> object:
        namespace = vars(sys.modules[package])
        if name in sources:
            source = sources[name]
            module = importlib.import_module(f"{package}.{source}")
            # All of the submodule's names at once, found directly from now on: importing it has
            # just bound its own name here, which may also be one of its names (dicomnet.send).
            namespace.update({key: getattr(module, key) for key, where in sources.items() if where == source})
            return namespace[name]
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *sources, *submodules})

    return __getattr__, __dir__
