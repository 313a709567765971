"""Bulk runs against the sandbox: counts, idempotence, rejects, details, bad provider answers, refresh."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest

from miniapp_sync.errors import InstallationError
from miniapp_sync.provider.ratelimit import MARGIN
from miniapp_sync.sandbox import SandboxConfig
from miniapp_sync.sync.collector import RUN_GC_THRESHOLD
from miniapp_sync.sync.reports import ResourceReport

from .conftest import World, derive


async def test_full_sync_stores_every_record_and_a_second_run_changes_nothing(world: World) -> None:
    app = derive()
    installation = await world.install(app)
    report = await world.runtime.engine.run(app.definition, app.plan, installation)
    assert report.status == "succeeded", report.as_dict()
    store = world.runtime.store
    for key, content_type in (
        ("products", "core:product"),
        ("customers", "core:customer"),
        ("orders", "ecommerce:orders"),
        ("abandonedCarts", "ecommerce:abandonedCarts"),
    ):
        expected = len(world.sandbox.data[key])
        assert report.resources[key].created == expected
        assert store.count_records(installation.id, content_type) == expected
    order = store.list_records(installation.id, "ecommerce:orders", limit=1)[0]
    assert order.data["items"]  # details were merged before mapping (D9)
    assert order.source == "bulk"

    again = await world.runtime.engine.run(app.definition, app.plan, world.fresh(installation))
    assert all(r.created == r.updated == 0 for r in again.resources.values())
    assert again.resources["products"].unchanged == len(world.sandbox.data["products"])  # D20


async def test_rejected_records_go_to_dead_letters_and_the_run_goes_on(world: World) -> None:
    def no_name_for_some(document: dict[str, Any]) -> None:
        # Only products whose sku ends in 1 have a name under this path: the rest miss a required field.
        document["sync"]["resources"]["products"]["apiMapping"]["name"] = {"path": "nope"}

    app = derive(no_name_for_some)
    installation = await world.install(app)
    report = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["products", "customers"])
    products = report.resources["products"]
    assert products.rejected == len(world.sandbox.data["products"])
    assert report.resources["customers"].created == len(world.sandbox.data["customers"])
    assert report.status == "partial"
    letters = world.runtime.store.list_dead_letters(installation.id)
    assert len(letters) == products.rejected
    assert "name: required field of core:product is missing (path 'nope')" in letters[0].reason
    assert letters[0].payload["id"]  # the provider's record, kept whole for replay
    # Mapped as its detail arrived: the letter still holds the record merged with its details (D9).
    assert {"skus", "updated_at"} <= letters[0].payload.keys()


async def test_a_missing_detail_keeps_the_list_record_and_a_failing_one_is_dead_lettered(world: World) -> None:
    app = derive()
    installation = await world.install(app)
    products = world.sandbox.data["products"]
    world.sandbox.missing_details("products", [products[0]["id"]])
    world.sandbox.fail_next(10, status=500, path_prefix=f"/products/{products[1]['id']}")
    report = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["products"])
    result = report.resources["products"]
    assert result.warnings == 1
    assert result.rejected == 1
    assert result.created == len(products) - 1
    assert report.status == "partial"
    (letter,) = world.runtime.store.list_dead_letters(installation.id)
    assert "500" in letter.reason
    assert world.runtime.store.get_record(installation.id, "core:product", str(products[0]["id"])) is not None


@pytest.mark.parametrize(
    ("breakage", "fragments"),
    [
        ("html", ["products", "text/html", "expected JSON"]),
        ("repeat", ["products", "page"]),
    ],
)
async def test_bad_provider_answers_fail_the_resource_with_a_clear_message(
    world: World, breakage: str, fragments: list[str]
) -> None:
    app = derive()
    installation = await world.install(app)
    if breakage == "html":
        world.sandbox.html_next(1, path_prefix="/products")
    else:
        world.sandbox.repeat_page_forever("products")
    report = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["products", "customers"])
    error = report.resources["products"].error
    assert error is not None
    for fragment in fragments:
        assert fragment in error
    assert report.status == "failed"
    assert report.resources["customers"].error is None  # the rest of the run goes on


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("dataProperty", "items", "dataProperty 'items'"),
        ("totalProperty", "pagination.links", "totalProperty"),
    ],
)
async def test_a_response_mapping_that_does_not_fit_names_resource_and_page(
    world: World, field: str, value: str, fragment: str
) -> None:
    app = derive(lambda d: d["sync"]["resources"]["products"]["responseMapping"].update({field: value}))
    installation = await world.install(app)
    report = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["products"])
    error = report.resources["products"].error
    assert error is not None
    assert fragment in error
    assert "page 1" in error
    assert world.runtime.store.count_records(installation.id, "core:product") == 0  # nothing half-stored


async def test_expired_token_is_refreshed_once_and_persisted(world: World) -> None:
    app = derive()
    installation = await world.install(app)
    world.sandbox.expire_access_token()
    report = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["orders"])
    assert report.status == "succeeded"
    bag = world.runtime.installations.credentials(world.fresh(installation))
    assert bag["accessToken"] != world.sandbox.config.access_token


async def test_a_failed_refresh_marks_the_installation_and_says_to_reconnect(world: World) -> None:
    app = derive()
    installation = await world.install(app)
    world.sandbox.expire_access_token()
    world.sandbox.fail_next(1, status=400, path_prefix="/oauth2/token", body='{"error":"invalid_grant"}')
    report = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["products"])
    error = report.resources["products"].error
    assert error is not None
    assert "reconnect" in error
    assert world.fresh(installation).status == "error"
    with pytest.raises(InstallationError, match="reconnect it before syncing"):
        await world.runtime.engine.run(app.definition, app.plan, world.fresh(installation))


async def test_incremental_runs_ask_only_for_what_changed(world: World) -> None:
    def incremental(document: dict[str, Any]) -> None:
        products = document["sync"]["resources"]["products"]
        # Salla lists omit products' updated_at; the merged detail carries it (cursorField reads the merged record).
        products["incremental"] = {"param": "updated_after", "cursorField": "updated_at"}

    app = derive(incremental)
    installation = await world.install(app)
    first = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["products"])
    assert first.resources["products"].created == len(world.sandbox.data["products"])
    changed = world.sandbox.data["products"][3]["id"]
    world.sandbox.mutate("products", changed, name="Renamed product")
    second = await world.runtime.engine.run(app.definition, app.plan, world.fresh(installation), resources=["products"])
    result = second.resources["products"]
    assert result.fetched < len(world.sandbox.data["products"])
    assert result.updated == 1
    stored = world.runtime.store.get_record(installation.id, "core:product", str(changed))
    assert stored is not None
    assert stored.data["name"] == "Renamed product"


async def test_detect_deletes_soft_deletes_what_a_clean_full_run_did_not_see(world: World) -> None:
    app = derive(lambda d: d["sync"]["resources"]["customers"].update(detectDeletes=True))
    installation = await world.install(app)
    await world.runtime.engine.run(app.definition, app.plan, installation, resources=["customers"])
    gone = world.sandbox.data["customers"][0]["id"]
    world.sandbox.delete("customers", gone)
    world.clock.advance(60)
    report = await world.runtime.engine.run(
        app.definition, app.plan, world.fresh(installation), resources=["customers"]
    )
    assert report.resources["customers"].deleted == 1
    record = world.runtime.store.get_record(installation.id, "core:customer", str(gone))
    assert record is not None
    assert record.deleted


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(products=70, customers=3, orders=3, carts=1, rate_limit=40)])
async def test_a_provider_enforcing_the_rate_limit_never_answers_429(world: World) -> None:
    # The provider enforces 40 req/s on its (real) clock; our budget is the definition's, set to 40.
    app = derive(lambda d: d["sync"]["syncConfiguration"].update(rateLimitPerSecond=40))
    installation = await world.install(app)
    real = world.runtime.engine
    from miniapp_sync.sync.engine import SyncEngine  # a real-clock engine: rate spacing must be real here

    engine = SyncEngine(real.store, real.installations)
    report = await engine.run(app.definition, app.plan, installation, resources=["products"])
    assert report.status == "succeeded"
    assert report.resources["products"].throttled == 0
    assert world.sandbox.stats.responses.get(429, 0) == 0
    # The run's stats show the rate the budget was paced at: the budget less the limiter's margin.
    assert report.as_dict()["resources"]["products"]["paced_per_second"] == pytest.approx(40 * (1 - MARGIN), abs=1e-3)


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """Return the collector's thresholds before the test, and put them back after it."""
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


async def test_runs_collect_young_objects_less_often_and_put_the_thresholds_back(
    world: World, thresholds: tuple[int, int, int]
) -> None:
    # Two tenants of the sandbox's one merchant: without the storeId the second install is not
    # refused as capturing the first one's deliveries (D24).
    app = derive(lambda d: d["auth"]["userDetails"]["mapping"].pop("storeId"))
    first, second = await world.install(app, "acme"), await world.install(app, "globex")
    seen: list[tuple[int, int, int]] = []

    def progress(report: ResourceReport, total: int | None) -> None:
        seen.append(gc.get_threshold())

    async def sync(installation: Any) -> None:
        await world.runtime.engine.run(app.definition, app.plan, installation, progress=progress)

    # Overlapping runs: the one that finishes first must not put the thresholds back under the other.
    await asyncio.gather(sync(first), sync(second))
    assert seen
    assert all(young >= RUN_GC_THRESHOLD and tuple(older) == thresholds[1:] for young, *older in seen)
    assert gc.get_threshold() == thresholds


async def test_a_run_leaves_automatic_collection_off_when_it_is_off(
    world: World, thresholds: tuple[int, int, int]
) -> None:
    app = derive()
    installation = await world.install(app)
    gc.set_threshold(0)
    seen: list[int] = []
    await world.runtime.engine.run(
        app.definition,
        app.plan,
        installation,
        resources=["products"],
        progress=lambda r, t: seen.append(gc.get_threshold()[0]),
    )
    assert seen
    assert set(seen) == {0}
    assert gc.get_threshold()[0] == 0


async def test_bulk_customers_are_stored_with_phones_in_e164_as_webhook_matching_looks_them_up(world: World) -> None:
    # The docs' own mapping: primaryPhone straight from Salla's national `mobile` (an integer).
    app = derive(lambda d: d["sync"]["resources"]["customers"]["apiMapping"].update(primaryPhone="mobile"))
    installation = await world.install(app)
    report = await world.runtime.engine.run(app.definition, app.plan, installation, resources=["customers"])
    assert report.status == "succeeded"
    stored = world.runtime.store.list_records(installation.id, "core:customer")
    assert stored
    for customer in stored:
        source = next(c for c in world.sandbox.data["customers"] if str(c["id"]) == customer.code)
        assert customer.data["primaryPhone"] == f"+966{source['mobile']}"


@pytest.mark.parametrize(
    "sandbox_config", [SandboxConfig(products=600, customers=1, orders=1, carts=1, latency=0.02, per_page_max=20)]
)
@pytest.mark.parametrize("details", [False, True], ids=["pages-ahead", "details-ahead"])
async def test_a_run_cancelled_mid_pagination_ends_interrupted_leaving_nothing_running(
    world: World, details: bool
) -> None:
    def fast(document: dict[str, Any]) -> None:
        document["sync"]["syncConfiguration"]["rateLimitPerSecond"] = 1000
        document["sync"]["syncConfiguration"]["batchSize"] = 20
        document["sync"]["resources"]["products"]["expandDetails"] = details
        document["sync"]["resources"]["products"]["pagination"]["defaultLimit"] = 20

    app = derive(fast)
    installation = await world.install(app)
    loop = asyncio.get_running_loop()
    # Every async generator the run starts, through the loop's own hooks (which then track it as usual).
    started: list[weakref.ref[AsyncGenerator[Any, Any]]] = []
    firstiter, finalizer = sys.get_asyncgen_hooks()
    assert firstiter is not None

    def track(generator: AsyncGenerator[Any, Any]) -> None:
        started.append(weakref.ref(generator))
        firstiter(generator)

    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    run: asyncio.Task[Any] | None = None

    def progress(report: ResourceReport, total: int | None) -> None:
        if report.pages == 2 and run is not None:
            run.cancel()  # pages (or a page's details) are being fetched ahead now

    before = asyncio.all_tasks()
    sys.set_asyncgen_hooks(track, finalizer)
    try:
        run = asyncio.ensure_future(
            world.runtime.engine.run(app.definition, app.plan, installation, resources=["products"], progress=progress)
        )
        with pytest.raises(asyncio.CancelledError):
            await run
    finally:
        sys.set_asyncgen_hooks(firstiter, finalizer)
        loop.set_exception_handler(None)
    (stored,) = world.runtime.store.list_runs()
    assert stored.status == "interrupted"
    # Nothing of the run goes on after it ended: no request task, and every generator closed by the run
    # itself (one left open is closed later by the collector or the loop's shutdown, where closing one
    # nested in another that is still closing it failed: "aclose(): asynchronous generator is already running").
    ours = [t for t in asyncio.all_tasks() - before if "miniapp_sync" in (t.get_coro().cr_code.co_filename or "")]
    assert ours == []
    gc.collect()
    assert [g.__qualname__ for g in (ref() for ref in started) if g is not None and g.ag_frame is not None] == []
    assert errors == []
    assert 0 < world.runtime.store.count_records(installation.id, "core:product") < 600
