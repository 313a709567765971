"""bench/budgets.py at a tiny scale (2 installations, under a second), so the benchmark cannot rot."""

from __future__ import annotations

import re

import pytest
from budgets import main


def test_both_budgets_print_their_cost_and_never_grant_closer_than_the_interval(
    postgres_admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--n", "2", "--seconds", "0.8", "--postgres", postgres_admin_url])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["in-process", "shared (PostgreSQL)"]
    assert "statements" in lines[1]
    for line in lines:
        gap = re.search(r"smallest gap ([\d.]+) ms", line)
        assert gap is not None
        assert float(gap.group(1)) >= 249.9  # 4 requests/s: never two grants under 250 ms apart


def test_a_budget_two_workers_share_on_a_busy_loop_never_grants_closer_than_the_interval(
    postgres_admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--n", "2", "--seconds", "1.5", "--workers", "2", "--busy", "20", "--postgres", postgres_admin_url])
    shared = capsys.readouterr().out.splitlines()[1]
    assert "2 worker(s) a budget" in shared
    gap = re.search(r"smallest gap ([\d.]+) ms", shared)
    assert gap is not None
    assert float(gap.group(1)) >= 249.9
