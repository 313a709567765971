"""Package exports loaded on first use (PEP 562), so importing one light module of a package is light.

``miniapp_sync.provider.redaction`` is plain text work, but importing it runs the package's
``__init__``, which used to import the HTTP client and with it aiohttp: every read-only command
paid for the network stack. A package lists its public names here instead, by module; each is
imported the first time it is asked for, and then kept on the package like a normal import.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, modules: Mapping[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """Return the package's ``__getattr__``: ``modules`` maps a submodule (relative) to the names it exports."""
    where = {name: f"{package}.{module}" for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name]), name)
        setattr(sys.modules[package], name, value)  # the next lookup is an ordinary attribute
        return value

    return __getattr__
