"""Runs as an operator searches them: joined to their tenant and MiniApp, filtered, last per resource."""

from __future__ import annotations

from miniapp_sync.store import Store
from miniapp_sync.store.run_search import RunFilter, RunSearch
from miniapp_sync.testing import FakeClock


def test_runs_are_found_by_tenant_ns_resource_status_and_start(store: Store, clock: FakeClock) -> None:
    acme = store.save_installation("acme", "salla", credentials=b"", metadata={}, user_input={}).id
    globex = store.save_installation("globex", "zid", credentials=b"", metadata={}, user_input={}).id
    first = store.start_run(acme, "products")
    store.finish_run(first.id, status="succeeded", stats={})
    clock.advance(60)
    failed = store.start_run(globex, "products")
    store.finish_run(failed.id, status="failed", stats={}, error="products: answered 500")
    clock.advance(60)
    going = store.start_run(acme, "customers")
    search = RunSearch(store)

    def ids(**where: object) -> list[str]:
        return [f.run.id for f in search.find(RunFilter(**where), limit=10)]  # type: ignore[arg-type]

    assert ids() == [going.id, failed.id, first.id]  # newest first
    assert [(f.tenant, f.ns) for f in search.find(RunFilter(), limit=10)] == [
        ("acme", "salla"), ("globex", "zid"), ("acme", "salla"),
    ]  # fmt: skip
    assert ids(tenant="globex") == [failed.id]
    assert ids(ns="salla") == [going.id, first.id]
    assert ids(resource="products") == [failed.id, first.id]
    assert ids(statuses=("failed", "running")) == [going.id, failed.id]
    assert ids(since=failed.started_at) == [going.id, failed.id]  # inclusive
    assert ids(until=failed.started_at) == [first.id]  # exclusive
    assert ids(installation_ids=(acme,), statuses=("succeeded",)) == [first.id]
    assert [f.run.id for f in search.find(RunFilter(), limit=1, offset=1)] == [failed.id]
    found = search.one(failed.id)
    assert found is not None
    assert (found.tenant, found.run.error) == ("globex", "products: answered 500")
    assert search.one("nothing") is None
    assert search.running(acme, "customers") == store.get_run(going.id)
    assert search.running(acme, "products") is None


def test_the_last_run_of_each_resource_and_the_checkpoints(store: Store, clock: FakeClock) -> None:
    acme = store.save_installation("acme", "salla", credentials=b"", metadata={}, user_input={}).id
    for resource, status in (("products", "failed"), ("customers", "succeeded"), ("products", "succeeded")):
        run = store.start_run(acme, resource)
        store.finish_run(run.id, status=status, stats={})  # type: ignore[arg-type]
        clock.advance(1)
    store.finish_run(store.start_run(acme, None).id, status="succeeded", stats={})  # of all: no resource's
    store.write_records(acme, "core:product", [], source="bulk", checkpoint=("products", {"page": 2, "began": 1.0}))
    search = RunSearch(store)
    latest = search.latest([acme, "another"])
    assert [(r.resource, r.status) for r in latest[acme]] == [("customers", "succeeded"), ("products", "succeeded")]
    assert search.latest([]) == {}
    assert search.checkpoints([acme]) == {(acme, "products"): {"page": 2, "began": 1.0}}
