"""Webhook commands: subscribe, subscriptions, unsubscribe, events, inbox assign and deadletters (of records)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from miniapp_sync.cli.app import (
    CursorOption,
    FormatOption,
    FunctionsOption,
    LimitOption,
    OutputFormat,
    StoreOption,
    TenantOption,
    app,
    console,
    open_runtime,
    print_view,
    registry,
    session,
    show_next,
    window,
)
from miniapp_sync.settings import resolve
from miniapp_sync.views.pages import MAX_EVENT_ID, MAX_EVENTS

if TYPE_CHECKING:
    from rich.table import Table

    from miniapp_sync.runtime import Runtime
    from miniapp_sync.store import DeadLetter

NsOption = Annotated[str | None, typer.Option("--ns", help="Only this MiniApp.")]


def _table(title: str, columns: tuple[str, ...]) -> Table:
    from rich.table import Table

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
    from miniapp_sync.network import is_http_url
    from miniapp_sync.store import Outbox
    from miniapp_sync.views import NewSubscriptionView
    from miniapp_sync.webhooks.delivery import seal
    from miniapp_sync.webhooks.signing import PREFIX, SecretError, new_secret, signing_key

    if not is_http_url(url):  # else every delivery to it would fail, long after the subscriber left
        raise typer.BadParameter(
            f"expected an http:// or https:// URL with a host (and a port from 0 to 65535), found {url[:200]!r}",
            param_hint="--url",
        )
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
    if output is OutputFormat.json:
        print_view(NewSubscriptionView.of(subscription, value if generated else None))
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
    from miniapp_sync.views import queries

    with open_runtime(store) as runtime:
        page = queries.subscriptions(runtime.store, tenant=tenant, ns=ns)
    if output is OutputFormat.json:
        print_view(page)
        return
    table = _table("Subscriptions", ("id", "tenant", "ns", "url", "created"))
    for row in page.items:
        table.add_row(row.id, row.tenant, row.ns, row.url, row.created_at)
    console().print(table)


@app.command()
def unsubscribe(
    subscription: Annotated[str, typer.Argument(help="The subscription id.", show_default=False)],
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> int:
    """Remove a trigger subscription (its undelivered events are dropped for it)."""
    from miniapp_sync.store import Outbox
    from miniapp_sync.views import RemovedView

    with open_runtime(store) as runtime:
        removed = Outbox(runtime.store).unsubscribe(subscription)
    if not removed:
        raise typer.BadParameter(f"no subscription {subscription!r}", param_hint="SUBSCRIPTION")
    if output is OutputFormat.json:
        print_view(RemovedView(subscription, removed))
    else:
        console().print(f"removed subscription {subscription}")
    return 0


@app.command()
def events(
    tenant: TenantOption,
    ns: NsOption = None,
    after: Annotated[int, typer.Option(help="The cursor: only events after this id.", min=0, max=MAX_EVENT_ID)] = 0,
    limit: Annotated[int, typer.Option(help="How many to show (1 to 1000).", min=1, max=MAX_EVENTS)] = 50,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Show a tenant's trigger events, oldest first; pass the printed cursor back with --after."""
    from miniapp_sync.views import queries

    with open_runtime(store) as runtime:
        page = queries.events(runtime.store, tenant=tenant, ns=ns, after=after, limit=limit)
    if output is OutputFormat.json:
        print_view(page)
        return
    table = _table(f"Trigger events of {tenant}", ("id", "event", "ns", "occurred", "record", "customer"))
    for e in page.items:
        record, customer = e.record or {}, e.customer or {}
        what = f"{record.get('contentType')} {record.get('code')}" if record else "—"
        table.add_row(e.id, e.event, e.ns, e.occurred_at, what, customer.get("code") or "—")
    console().print(table)
    console().print(f"next cursor: {page.next}")


def row_id(help: str) -> Any:
    """A row id argument: bounded, as an id past SQLite's 64 bits was an internal OverflowError."""
    return typer.Argument(metavar="ID", help=help, show_default=False, min=1, max=MAX_EVENT_ID)


inbox = typer.Typer(
    name="inbox",
    help="Unmatched webhook deliveries: give one to an installation (list them with `deliveries --status unmatched`).",
    no_args_is_help=True,
)
app.add_typer(inbox)


@inbox.command("assign")
def assign_inbox_row(
    id: Annotated[int, row_id("The unmatched inbox row's id.")],
    installation: Annotated[str, typer.Option("--installation", help="The installation it is for.")],
    definition: Annotated[Path, typer.Option("--definition", "-d", help="The MiniApp definition to process it with.")],
    store: StoreOption = None,
    functions: FunctionsOption = None,
    output: FormatOption = OutputFormat.text,
) -> int:
    """Give an unmatched delivery to an installation and process it (exit 1 when processing fails)."""
    import asyncio

    from miniapp_sync.errors import WebhookError
    from miniapp_sync.runtime import load_miniapp
    from miniapp_sync.store import Inbox
    from miniapp_sync.views.deliveries import delivery
    from miniapp_sync.webhooks.assign import assign
    from miniapp_sync.webhooks.processor import Processor

    miniapp = load_miniapp(definition, registry(functions))
    with open_runtime(store, miniapps=[miniapp]) as runtime:
        inbox_table = Inbox(runtime.store)
        try:
            assignment = asyncio.run(assign(runtime, inbox_table, id, installation))
        except WebhookError as exc:
            raise typer.BadParameter(str(exc), param_hint="ID") from None
        if not assignment.duplicate:
            asyncio.run(Processor(runtime, inbox_table).drain_installation(miniapp.ns, installation))
        row = inbox_table.get(id)
        shown = delivery(runtime, str(id))
    if row is None or shown is None:
        raise typer.BadParameter(f"inbox row {id} was purged meanwhile", param_hint="ID")
    if output is OutputFormat.json:
        print_view(shown.delivery)
    elif assignment.duplicate:
        console().print(f"inbox row {id} is a resend of a delivery already stored: ", end="")
        console().print(row.error or "", markup=False)
    else:
        console().print(f"assigned inbox row {id} ({row.event or 'no event'}) to {installation}: {row.status}")
        if row.error:
            console().print(row.error, markup=False)
    return 0 if row.status in ("done", "ignored") else 1


deadletters = typer.Typer(
    name="deadletters",
    help="Records a bulk sync rejected (D19): list, show, replay. Webhook deliveries: `deliveries`.",
    no_args_is_help=True,
)
app.add_typer(deadletters)


def _letter(runtime: Runtime, id: int) -> DeadLetter:
    letter = runtime.store.get_dead_letter(id)
    if letter is None:
        raise typer.BadParameter(f"no dead letter {id}", param_hint="ID")
    return letter


@deadletters.command("list")
def list_dead_letters(
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    replayed: Annotated[bool, typer.Option("--all", help="Include those already replayed.")] = False,
    limit: LimitOption = 50,
    cursor: CursorOption = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List the records a bulk sync rejected, oldest first (the order to replay them in)."""
    from miniapp_sync.views import queries

    page_of = window(limit, cursor)
    with open_runtime(store) as runtime:
        ids = queries.installation_ids(runtime.store, tenant) if tenant else None
        page = queries.dead_letters(runtime, page_of, installation_ids=ids, kind="record", include_replayed=replayed)
    if output is OutputFormat.json:
        print_view(page)
        return
    table = _table("Dead letters", ("id", "kind", "tenant", "source", "created", "replayed", "reason"))
    for row in page.items:
        reason = row.reason.splitlines()[0] if row.reason else ""
        table.add_row(row.id, row.kind, row.tenant or "—", row.source, row.created_at, row.replayed_at or "", reason)
    console().print(table)
    show_next(page)


@deadletters.command("show")
def show_dead_letter(
    id: Annotated[int, row_id("The dead letter's id.")],
    store: StoreOption = None,
    output: FormatOption = OutputFormat.json,  # a payload reads best as JSON, so both formats print it
) -> None:
    """Show one dead letter: the reason and the payload that failed (as JSON)."""
    from miniapp_sync.views import queries

    with open_runtime(store) as runtime:
        shown = queries.dead_letter(runtime, id)
    if shown is None:
        raise typer.BadParameter(f"no dead letter {id}", param_hint="ID")
    print_view(shown)


@deadletters.command("replay")
def replay_dead_letter(
    id: Annotated[int, row_id("The dead letter's id.")],
    definition: Annotated[
        Path, typer.Option("--definition", "-d", help="The current MiniApp definition to replay it through.")
    ],
    store: StoreOption = None,
    functions: FunctionsOption = None,
    output: FormatOption = OutputFormat.text,
) -> int:
    """Map and write a rejected record again through the current definition (exit 1 when it fails again)."""
    import asyncio

    from miniapp_sync.runtime import load_miniapp
    from miniapp_sync.views import ReplayView, timestamp
    from miniapp_sync.webhooks.replay import replay

    miniapp = load_miniapp(definition, registry(functions))
    with open_runtime(store) as runtime:
        letter = _letter(runtime, id)
        if letter.kind == "webhook":  # one way to replay a delivery: as a job, with a preview
            inbox_id = letter.payload.get("inboxId") if isinstance(letter.payload, dict) else None
            hint = f"`miniapp-sync deliveries replay {inbox_id} -d DEF`"
            raise typer.BadParameter(
                f"dead letter {id} is a webhook delivery's: replay it with {hint}", param_hint="ID"
            )
        if letter.replayed_at is not None:
            when = timestamp(letter.replayed_at)
            raise typer.BadParameter(f"dead letter {id} was replayed at {when}", param_hint="ID")
        runtime.add(miniapp)
        outcome = asyncio.run(replay(runtime, miniapp, letter))
    if output is OutputFormat.json:
        print_view(ReplayView(str(id), outcome.ok, outcome.detail))
    elif outcome.ok:
        console().print(f"[green]replayed[/] dead letter {id}: {outcome.detail}")
    else:
        console().print(f"[red]dead letter {id} failed again:[/] ", end="")
        console().print(outcome.detail, markup=False)
    return 0 if outcome.ok else 1
