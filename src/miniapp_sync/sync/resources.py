"""Names of a definition's ``sync.resources`` as commands and requests give them, and which a sync covers."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

from miniapp_sync.definition.model import Definition
from miniapp_sync.errors import InstallationError, UsageError


def check_resource_names(known: Collection[str], names: Iterable[str] | None, *, ns: str | None = None) -> None:
    """Raise UsageError, with a 'did you mean', for the first of ``names`` that is not in ``known``."""
    for name in names or ():
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            where = f" of {ns!r}" if ns else ""
            raise UsageError(
                f"no resource {name!r} in sync.resources{where} (known: {', '.join(known) or 'none'}){hint}"
            )


def check_definition_resources(definition: Definition, names: Iterable[str] | None) -> None:
    """Check resource names given on a command line against a definition, before any work starts."""
    check_resource_names(definition.sync.resources if definition.sync else {}, names, ns=definition.ns)


def select_resources(definition: Definition, names: list[str] | None) -> list[str]:
    """Return the resources a sync covers: those named (even if disabled), or every enabled one."""
    ns, sync = definition.ns, definition.sync
    if sync is None or not sync.resources:
        raise InstallationError(f"{ns!r} has no sync.resources to run")
    if names:
        check_resource_names(sync.resources, names, ns=ns)  # a usage error, with a "did you mean"
        return list(names)
    if not sync.sync_configuration.enabled:
        raise InstallationError(
            f"bulk sync of {ns!r} is disabled (syncConfiguration.enabled is false); name a resource to run it anyway"
        )
    return [key for key, resource in sync.resources.items() if resource.enabled]


def synced_resources(definition: Definition, names: list[str] | None) -> set[str]:
    """Return the resources a sync of ``names`` may map: those of them the definition has, or every enabled one.

    Unlike ``select_resources`` it never raises: what a sync may not run is refused where it
    runs, with the errors above.
    """
    resources = definition.sync.resources if definition.sync else {}
    if names:
        return {name for name in names if name in resources}
    return {key for key, resource in resources.items() if resource.enabled}
