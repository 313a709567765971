"""The submission package: what a reviewer needs, with every secret value blanked.

- ``definition.json``: the definition, pretty-printed, secrets in auth.config blanked
- ``webhooks.md`` and ``samples/``: the subscribed webhook events with their sample payloads
- ``check-report.md`` / ``check-report.json``: the submission checklist and its evidence
- ``SETUP.md``: the end-user setup steps (from the definition's description)
- ``CHANGELOG.md``: a stub for this version, kept if one exists
- ``EXTENSIONS.md``: each feature used beyond the documented vocabulary, and the compute
  functions the definition calls with what each does (the guide asks for custom ``fn`` names)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from miniapp_sync.definition.compatibility import compatibility
from miniapp_sync.definition.findings import dotted
from miniapp_sync.definition.lint import SECRET_NAME
from miniapp_sync.definition.model import Definition
from miniapp_sync.mapping.functions import FunctionRegistry
from miniapp_sync.submission.checks import Report
from miniapp_sync.submission.samples import read_sample


def blank_secrets(document: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of the raw document whose auth.config secret values are ''."""
    copy: dict[str, Any] = json.loads(json.dumps(document))
    auth = copy.get("auth") if isinstance(copy.get("auth"), dict) else None
    if auth is None or not isinstance(auth.get("config"), dict):
        return copy
    sensitive = set(auth.get("sensitiveKeys") or [])
    for key, value in auth["config"].items():
        if value not in ("", None) and (key in sensitive or SECRET_NAME.search(key)):
            auth["config"][key] = ""
    return copy


def extensions_markdown(definition: Definition, document: Any, functions: FunctionRegistry | None = None) -> str:
    """Return EXTENSIONS.md: each extension in use (D41) and each compute function with its doc line."""
    found = compatibility(document)
    lines = [f"# Extensions and custom functions — {definition.ns} {definition.version}", ""]
    lines += ["Features this definition uses beyond the documented MiniApps vocabulary:", ""]
    lines += [f"- `{use.path}`: {use.extension.what}{f' ({use.detail})' if use.detail else ''}" for use in found.uses]
    lines += [] if found.uses else ["- none"]
    lines += ["", "## Compute functions", ""]
    for fn, locs in sorted(found.functions.items()):
        first = (functions.get(fn).__doc__ or "").strip().splitlines()[:1] if functions and fn in functions else []
        doc = f": {first[0]}" if first else ""
        lines.append(f"- `{fn}`{doc} (used at {', '.join(f'`{dotted(loc)}`' for loc in locs)})")
    lines += [] if found.functions else ["- none"]
    return "\n".join(lines) + "\n"


def write_package(
    definition: Definition,
    document: dict[str, Any],
    report: Report,
    samples: Path | None,
    out: Path,
    *,
    functions: FunctionRegistry | None = None,
) -> list[Path]:
    """Write the package into ``out``; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)

    put("definition.json", json.dumps(blank_secrets(document), indent=2, ensure_ascii=False) + "\n")
    put("check-report.md", report.markdown())
    put("check-report.json", json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
    events = sorted(set(definition.handlers()) | definition.trigger_events())
    lines = [f"# Subscribed webhook events — {definition.ns} {definition.version}", ""]
    lines += ["| Event | Handler | Trigger | Sample |", "|---|---|---|---|"]
    for event in events:
        sample = read_sample(samples, event) if samples else None
        shown = "—"
        if sample is not None and sample.data is not None:
            # Written afresh from the bytes read inside --samples: never a copy of what a link points at.
            (out / "samples").mkdir(exist_ok=True)
            (out / "samples" / sample.name).write_bytes(sample.data)
            written.append(out / "samples" / sample.name)
            shown = f"[samples/{sample.name}](samples/{sample.name})"
        handler = "✓" if event in definition.handlers() else "—"
        trigger = "✓" if event in definition.trigger_events() else "—"
        lines.append(f"| `{event}` | {handler} | {trigger} | {shown} |")
    put("webhooks.md", "\n".join(lines) + "\n")
    put("EXTENSIONS.md", extensions_markdown(definition, document, functions))
    put("SETUP.md", f"# Setting up {definition.title or definition.ns}\n\n{definition.description or ''}\n")
    changelog = out / "CHANGELOG.md"
    if not changelog.exists():
        today = datetime.now(UTC).date().isoformat()
        put(
            "CHANGELOG.md",
            f"# Changelog\n\n## {definition.version} — {today}\n\n- Describe what changed in this version.\n",
        )
    return written
