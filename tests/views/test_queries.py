"""The lists, read a page at a time from a real store: every row once, in order, whatever the page size."""

from __future__ import annotations

from pathlib import Path

import pytest

from miniapp_sync.errors import InstallationError
from miniapp_sync.store import RecordWrite, Store
from miniapp_sync.testing import FakeClock
from miniapp_sync.views import Window, queries


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_records_of_a_tenant_with_two_miniapps_page_in_one_merged_order(tmp_path: Path, limit: int) -> None:
    with Store.open(str(tmp_path / "store.sqlite"), clock=FakeClock()) as store:
        ids = []
        for ns, codes in (("salla", ["a", "c"]), ("zid", ["b", "d"])):
            installation = store.save_installation("acme", ns, credentials=b"", metadata={}, user_input={})
            store.write_records(
                installation.id, "core:product", [RecordWrite(c, {"n": c}) for c in codes], source="bulk"
            )
            ids.append(installation.id)
        seen: list[str] = []
        cursor: str | None = None
        for _ in range(6):
            page = queries.records(store, Window.of(limit, cursor), ids, "core:product")
            seen += [r.code for r in page.items]
            cursor = page.next
            if cursor is None:
                break
        assert seen == ["a", "b", "c", "d"]


def test_a_tenants_installations_are_gathered_and_an_unknown_tenant_is_named(tmp_path: Path) -> None:
    with Store.open(str(tmp_path / "store.sqlite"), clock=FakeClock()) as store:
        salla = store.save_installation("acme", "salla", credentials=b"", metadata={}, user_input={}).id
        zid = store.save_installation("acme", "zid", credentials=b"", metadata={}, user_input={}).id
        other = store.save_installation("globex", "salla", credentials=b"", metadata={}, user_input={}).id
        assert sorted(queries.installation_ids(store, "acme")) == sorted([salla, zid])
        assert queries.installation_ids(store, "acme", "zid") == [zid]
        assert sorted(queries.installation_ids(store, None, "salla")) == sorted([salla, other])
        with pytest.raises(InstallationError, match="tenant 'acmee' has no installation of 'salla'"):
            queries.installation_ids(store, "acmee", "salla")
