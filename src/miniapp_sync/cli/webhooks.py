"""Webhook commands: subscribe, subscriptions, unsubscribe, events, inbox and deadletters."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from miniapp_sync.cli.app import (
    FormatOption,
    FunctionsOption,
    OutputFormat,
    app,
    console,
    print_json,
    registry,
    session,
)
from miniapp_sync.cli.operations import StoreOption, TenantOption, open_runtime
from miniapp_sync.provider.redaction import Redactor
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.settings import resolve
from miniapp_sync.store import DeadLetter, DeadLetterKind, Inbox, InboxStatus, Outbox
from miniapp_sync.webhooks.delivery import seal
from miniapp_sync.webhooks.replay import replay
from miniapp_sync.webhooks.signing import PREFIX, SecretError, new_secret, signing_key
from miniapp_sync.webhooks.triggers import event_body, iso

NsOption = Annotated[str | None, typer.Option("--ns", help="Only this MiniApp.")]


def _when(timestamp: float | None) -> str:
    return "—" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


@app.command()
def subscribe(
    tenant: TenantOption,
    ns: Annotated[str, typer.Option("--ns", help="The MiniApp whose trigger events to receive.")],
    url: Annotated[str, typer.Option("--url", help="Where events are POSTed.")],
    secret: Annotated[
        str | None,
        typer.Option(
            help="The signing secret, whsec_… (Standard Webhooks) or any passphrase (or env:VAR);"
            " a new one is generated and shown once when omitted."
        ),
    ] = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Send a tenant's trigger events to a URL as POSTs signed the Standard Webhooks way."""
    if not url.startswith(("http://", "https://")):
        raise typer.BadParameter("expected an http:// or https:// URL", param_hint="--url")
    generated = secret is None
    if secret is not None:
        secret = resolve(secret, "--secret", session().environ)
    value = new_secret() if secret is None else secret
    try:
        signing_key(value)
    except SecretError as exc:
        raise typer.BadParameter(f"{exc} (or omit --secret to have one generated)", param_hint="--secret") from None
    with open_runtime(store, create=True) as runtime:  # it writes: a first subscription may come before installs
        subscription = Outbox(runtime.store).subscribe(tenant, ns, url, seal(runtime.installations.vault, value))
    row = {"id": subscription.id, "tenant": tenant, "ns": ns, "url": url}
    if output is OutputFormat.json:
        print_json({**row, **({"secret": value} if generated else {})})
        return
    console().print(f"subscribed {url} to {ns} trigger events of {tenant} (id {subscription.id})")
    if generated:
        # Shown this once, for the subscriber to verify signatures with; it is stored encrypted.
        console().print(f"signing secret (Standard Webhooks): {value}")
    elif not value.startswith(PREFIX):
        console().print(f"subscribers verify with {PREFIX} + the base64 of this secret (Standard Webhooks)")


@app.command()
def subscriptions(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    ns: NsOption = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List trigger subscriptions (secrets are never shown)."""
    with open_runtime(store) as runtime:
        found = Outbox(runtime.store).subscriptions(tenant, ns)
    rows = [{"id": s.id, "tenant": s.tenant, "ns": s.ns, "url": s.url, "createdAt": _when(s.created_at)} for s in found]
    if output is OutputFormat.json:
        print_json(rows)
        return
    table = _table("Subscriptions", ("id", "tenant", "ns", "url", "created"))
    for row in rows:
        table.add_row(row["id"], row["tenant"], row["ns"], row["url"], row["createdAt"])
    console().print(table)


@app.command()
def unsubscribe(
    subscription: Annotated[str, typer.Argument(help="The subscription id.", show_default=False)],
    store: StoreOption = None,
) -> int:
    """Remove a trigger subscription (its undelivered events are dropped for it)."""
    with open_runtime(store) as runtime:
        removed = Outbox(runtime.store).unsubscribe(subscription)
    if not removed:
        raise typer.BadParameter(f"no subscription {subscription!r}", param_hint="SUBSCRIPTION")
    console().print(f"removed subscription {subscription}")
    return 0


@app.command()
def events(
    tenant: TenantOption,
    ns: NsOption = None,
    after: Annotated[int, typer.Option(help="The cursor: only events after this id.")] = 0,
    limit: int = 50,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Show a tenant's trigger events, oldest first; pass the printed cursor back with --after."""
    with open_runtime(store) as runtime:
        found = Outbox(runtime.store).events(tenant, ns=ns, after=after, limit=limit)
    cursor = str(found[-1].id) if found else str(after)
    if output is OutputFormat.json:
        print_json({"events": [event_body(e) for e in found], "next": cursor})
        return
    table = _table(f"Trigger events of {tenant}", ("id", "event", "ns", "occurred", "record", "customer"))
    for e in found:
        record, customer = e.payload.get("record") or {}, e.payload.get("customer") or {}
        what = f"{record.get('contentType')} {record.get('code')}" if record else "—"
        table.add_row(str(e.id), e.event, e.ns, iso(e.occurred_at), what, customer.get("code") or "—")
    console().print(table)
    console().print(f"next cursor: {cursor}")


@app.command()
def inbox(
    status: Annotated[
        str | None, typer.Option(help="Only rows in this state (pending, unmatched, ignored, …).")
    ] = None,
    limit: int = 50,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List received webhook deliveries and what became of them (bodies are not shown)."""
    states = ("pending", "processing", "done", "failed", "ignored", "unmatched", "ping")
    if status is not None and status not in states:
        raise typer.BadParameter(f"expected one of {', '.join(states)}", param_hint="--status")
    chosen: InboxStatus | None = status  # type: ignore[assignment]  # checked just above
    with open_runtime(store) as runtime:
        found = Inbox(runtime.store).list(status=chosen, limit=limit)
    if output is OutputFormat.json:
        print_json(
            [
                {
                    "id": r.id,
                    "ns": r.ns,
                    "installationId": r.installation_id,
                    "event": r.event,
                    "transactionId": r.transaction_id,
                    "status": r.status,
                    "attempts": r.attempts,
                    "receivedAt": _when(r.received_at),
                    "error": r.error,
                }
                for r in found
            ]
        )
        return
    table = _table("Webhook inbox", ("id", "ns", "installation", "event", "status", "attempts", "received", "error"))
    for r in found:
        cells = (r.installation_id or "—", r.event or "—", r.status, str(r.attempts), _when(r.received_at))
        table.add_row(str(r.id), r.ns, *cells, r.error or "")
    console().print(table)


deadletters = typer.Typer(
    name="deadletters", help="Rejected records and failed webhook deliveries.", no_args_is_help=True
)
app.add_typer(deadletters)


def _letter(runtime: Runtime, id: int) -> DeadLetter:
    letter = runtime.store.get_dead_letter(id)
    if letter is None:
        raise typer.BadParameter(f"no dead letter {id}", param_hint="ID")
    return letter


def _shown(runtime: Runtime, letter: DeadLetter) -> dict[str, Any]:
    """Return a dead letter for output, with the installation's credential values masked (D30)."""
    installation = runtime.store.get_installation(letter.installation_id)
    known = runtime.installations.credentials(installation).values() if installation else ()
    redactor = Redactor(str(v) for v in known if isinstance(v, str | int) and str(v))
    return {
        "id": letter.id,
        "kind": letter.kind,
        "installationId": letter.installation_id,
        "tenant": installation.tenant if installation else None,
        "source": letter.source,
        "reason": redactor.values(letter.reason),
        "runId": letter.run_id,
        "createdAt": _when(letter.created_at),
        "replayedAt": _when(letter.replayed_at) if letter.replayed_at else None,
        "payload": json.loads(redactor.values(json.dumps(letter.payload, ensure_ascii=False))),
    }


@deadletters.command("list")
def list_dead_letters(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    kind: Annotated[str | None, typer.Option(help="record or webhook.")] = None,
    replayed: Annotated[bool, typer.Option("--all", help="Include those already replayed.")] = False,
    limit: int = 50,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List dead letters, oldest first (the order to replay them in)."""
    if kind not in (None, "record", "webhook"):
        raise typer.BadParameter("expected record or webhook", param_hint="--kind")
    chosen: DeadLetterKind | None = kind  # type: ignore[assignment]  # checked just above
    with open_runtime(store) as runtime:
        ids = [i.id for i in runtime.store.list_installations() if tenant is None or i.tenant == tenant]
        found = [
            letter
            for installation_id in ids
            for letter in runtime.store.list_dead_letters(
                installation_id, kind=chosen, include_replayed=replayed, limit=limit
            )
        ]
        found = sorted(found, key=lambda letter: letter.id)[:limit]
        rows = [_shown(runtime, letter) for letter in found]
    if output is OutputFormat.json:
        print_json(rows)
        return
    table = _table("Dead letters", ("id", "kind", "tenant", "source", "created", "replayed", "reason"))
    for row in rows:
        reason = row["reason"].splitlines()[0] if row["reason"] else ""
        table.add_row(
            str(row["id"]), row["kind"], row["tenant"] or "—", row["source"], row["createdAt"],
            row["replayedAt"] or "", reason,
        )  # fmt: skip
    console().print(table)


@deadletters.command("show")
def show_dead_letter(
    id: Annotated[int, typer.Argument(metavar="ID", help="The dead letter's id.", show_default=False)],
    store: StoreOption = None,
) -> None:
    """Show one dead letter: the reason and the payload that failed (as JSON)."""
    with open_runtime(store) as runtime:
        print_json(_shown(runtime, _letter(runtime, id)))


@deadletters.command("replay")
def replay_dead_letter(
    id: Annotated[int, typer.Argument(metavar="ID", help="The dead letter's id.", show_default=False)],
    definition: Annotated[
        Path, typer.Option("--definition", "-d", help="The current MiniApp definition to replay it through.")
    ],
    store: StoreOption = None,
    functions: FunctionsOption = None,
    output: FormatOption = OutputFormat.text,
) -> int:
    """Run a dead letter again through the current definition (exit 1 when it fails again)."""
    miniapp = load_miniapp(definition, registry(functions))
    with open_runtime(store) as runtime:
        letter = _letter(runtime, id)
        if letter.replayed_at is not None:
            raise typer.BadParameter(f"dead letter {id} was replayed at {_when(letter.replayed_at)}", param_hint="ID")
        runtime.add(miniapp)
        outcome = asyncio.run(replay(runtime, miniapp, letter))
    if output is OutputFormat.json:
        print_json({"id": id, "ok": outcome.ok, "detail": outcome.detail})
    elif outcome.ok:
        console().print(f"[green]replayed[/] dead letter {id}: {outcome.detail}")
    else:
        console().print(f"[red]dead letter {id} failed again:[/] ", end="")
        console().print(outcome.detail, markup=False)
    return 0 if outcome.ok else 1
