"""Operator commands: install, installations, uninstall, sync (runs, pause: cli/runs.py; records: cli/records.py).

A sync run in the foreground (progress, summary, Ctrl-C) is cli/foreground.py's.
"""

from __future__ import annotations

from typing import Annotated

import typer

from miniapp_sync.cli.app import (
    ConfigOption,
    CursorOption,
    DefinitionArgument,
    FormatOption,
    FunctionsOption,
    LimitOption,
    MaxRetryAfterOption,
    OutputFormat,
    PrivateOption,
    PublicUrlOption,
    RewriteOption,
    StoreOption,
    TenantOption,
    app,
    console,
    open_runtime,
    pairs,
    print_json,
    print_view,
    registry,
    show_next,
    starting,
    window,
)
from miniapp_sync.cli.credentials import CredentialOption, CredentialsFileOption, gather_credentials
from miniapp_sync.cli.foreground import failed, foreground_sync, print_runs, runs_view


@app.command()
def install(
    definition: DefinitionArgument,
    tenant: TenantOption,
    credential: CredentialOption = None,
    credentials_file: CredentialsFileOption = None,
    metadata: Annotated[list[str] | None, typer.Option(help="A metadata key=value (e.g. storeId=…).")] = None,
    user_input: Annotated[list[str] | None, typer.Option("--input", help="An install-form value key=value.")] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
    rewrite: RewriteOption = None,
    allow_private_network: PrivateOption = False,
    public_url: PublicUrlOption = None,
    no_sync: Annotated[
        bool, typer.Option("--no-sync", help="Do not run the initial import of every enabled resource.")
    ] = False,
    output: FormatOption = OutputFormat.text,
    functions: FunctionsOption = None,
) -> int:
    """Install a MiniApp for a tenant with API keys or pasted tokens, then run its initial import."""
    import asyncio

    from miniapp_sync.runtime import load_miniapp
    from miniapp_sync.views import InstallationView, to_json

    miniapp = load_miniapp(definition, registry(functions))
    bag = gather_credentials(credential, credentials_file)
    with open_runtime(
        store, rewrite, allow_private_network, public_url, config=config, miniapps=[miniapp], create=True
    ) as runtime:
        installation = asyncio.run(
            runtime.installations.install(
                miniapp.definition,
                tenant,
                credentials=bag,
                metadata=pairs(metadata, "--metadata"),
                user_input=pairs(user_input, "--input"),
            )
        )
        if output is OutputFormat.text:
            console().print(
                f"[green]installed[/] {installation.ns} for {tenant}: {installation.status} (id {installation.id})"
            )
            if installation.metadata:
                console().print(f"metadata: {', '.join(f'{k}={v}' for k, v in installation.metadata.items())}")
        if no_sync:
            if output is OutputFormat.json:
                print_json({**to_json(InstallationView.of(installation)), "initialSync": None})
            return 0
        # The lifecycle (install → initial sync → realtime): the first import runs now, with progress.
        runs = foreground_sync(runtime, installation, None, output, initial=True)
        shown = runs_view(runtime, runs) if output is OutputFormat.json else None
    if shown is not None:
        print_json({**to_json(InstallationView.of(installation)), "initialSync": shown})
        return 1 if failed(runs) else 0
    return print_runs(runs)


@app.command("oauth-link")
def oauth_link(
    definition: DefinitionArgument,
    tenant: TenantOption,
    reconnect: Annotated[
        bool, typer.Option(help="Replace the tokens of the tenant's existing installation (same provider account).")
    ] = False,
    user_input: Annotated[
        list[str] | None, typer.Option("--input", help="An install-form value key=value (e.g. subdomain=my-shop).")
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(help="The URL `serve` is reached at (its --public-url, or the settings'); the link points there."),
    ] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
    functions: FunctionsOption = None,
) -> int:
    """Issue a signed OAuth start link for a tenant: open it in a browser within 10 minutes (D31a)."""
    from miniapp_sync.runtime import load_miniapp
    from miniapp_sync.views import OAuthLinkView

    miniapp = load_miniapp(definition, registry(functions))
    # The operator's auth.config (client_id) is needed: the link is refused now if its start would fail.
    with open_runtime(store, public_url=public_url, config=config, miniapps=[miniapp]) as runtime:
        link = runtime.installations.oauth.issue_link(
            miniapp.definition, tenant, reconnect=reconnect, user_input=pairs(user_input, "--input")
        )
    view = OAuthLinkView.of(link)
    if output is OutputFormat.json:
        print_view(view)
    else:
        console().print(link.url, soft_wrap=True)
        console().print(f"valid until {view.expires_at}; the tenant's admin opens it to connect {link.ns}")
    return 0


@app.command()
def installations(
    ns: Annotated[str | None, typer.Option(help="Only this MiniApp.")] = None,
    limit: LimitOption = 100,
    cursor: CursorOption = None,
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List installations (credentials are never shown)."""
    from rich.table import Table
    from rich.text import Text

    from miniapp_sync.views import queries

    page_of = window(limit, cursor)
    with open_runtime(store) as runtime:
        page = queries.installations(runtime.store, page_of, ns=ns)
    if output is OutputFormat.json:
        print_view(page)
        return
    table = Table(title="Installations", title_justify="left")
    for column in ("id", "tenant", "ns", "status", "paused", "updated", "last runs", "error"):
        table.add_column(column)
    for i in page.items:
        last = ", ".join(f"{r.resource} {r.status}" for r in i.last_runs)
        paused = "paused" if i.paused else ""
        table.add_row(i.id, i.tenant, i.ns, i.status, paused, i.updated_at, last, Text(i.error or ""))  # [[key]]
    console().print(table)
    show_next(page)


@app.command()
def uninstall(
    tenant: TenantOption,
    ns: Annotated[str, typer.Option(help="The MiniApp's ns.")],
    store: StoreOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Uninstall: forget the credentials and stop syncing and receiving webhooks (records are kept)."""
    from miniapp_sync.views import InstallationView

    with open_runtime(store) as runtime:
        installation = runtime.installations.uninstall(runtime.installations.find(tenant, ns).id)
    if output is OutputFormat.json:
        print_view(InstallationView.of(installation))
    else:
        console().print(f"uninstalled {ns} for {tenant}")


@app.command()
def sync(
    definition: DefinitionArgument,
    tenant: TenantOption,
    resource: Annotated[list[str] | None, typer.Option(help="Only this resource (repeatable).")] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
    rewrite: RewriteOption = None,
    allow_private_network: PrivateOption = False,
    output: FormatOption = OutputFormat.text,
    functions: FunctionsOption = None,
    max_retry_after: MaxRetryAfterOption = None,
    enqueue: Annotated[
        bool, typer.Option("--enqueue", help="Queue it for the workers instead (PostgreSQL): one job per resource.")
    ] = False,
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Detail requests in flight at most; below it, as many as fill rateLimitPerSecond (default 64).",
        ),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Ignore the checkpoints: list every resource again from its first page.")
    ] = False,
) -> int:
    """Run a bulk sync of a tenant's installation now (exit 1 when a resource failed), or queue it."""
    with starting():  # the imports too: the store's, the definition model's
        from miniapp_sync.runtime import load_for_sync
        from miniapp_sync.sync.resources import check_definition_resources

        # Only the synced resources' mappings are compiled (the workers compile theirs for --enqueue).
        miniapp = load_for_sync(definition, resource, registry(functions))
    check_definition_resources(miniapp.definition, resource)  # a typo is bad usage (2), before any store opens
    if enqueue:
        from miniapp_sync.cli.scaling import enqueue_syncs

        enqueue_syncs(miniapp, tenant, resource, store, output, full=full)
        return 0
    with starting():
        runtime = open_runtime(
            store, rewrite, allow_private_network, config=config, miniapps=[miniapp], max_retry_after=max_retry_after
        )
    with runtime:
        installation = runtime.installations.find(tenant, miniapp.ns)
        runs = foreground_sync(
            runtime, installation, resource, output, initial=False, max_in_flight=max_in_flight, full=full
        )
        shown = runs_view(runtime, runs) if output is OutputFormat.json else None
    if shown is not None:
        print_json(shown)
        return 1 if failed(runs) else 0
    return print_runs(runs)
