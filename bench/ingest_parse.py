"""Benchmark: what exact ids (D26) and body digests add to a delivery's CPU work in the receiver.

The receiver parses each body and verifies its HMAC; since the body-keyed de-duplication it also
reads integers exactly (``exactjson.loads``: orjson, plus a scan for a 20-digit run) and hashes the
body (SHA-256). Both are measured here against the floor of the same run: ``orjson.loads`` plus
the HMAC, the parse-and-verify work every delivery did before. Deliveries are the sandbox's
Salla-shaped ``order.created`` bodies (~5 kB), as in ``bench/webhook_ingest.py``.

Run: ``.venv/bin/python bench/ingest_parse.py`` (a few seconds; ``--rounds`` to change).
The added microseconds, set against ``bench/webhook_ingest.py``'s per-delivery budget (1/throughput,
about 200 µs at 5,000 deliveries/s on one core), bound what they can cost the ingest.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import statistics
import timeit

import orjson

from miniapp_sync import exactjson
from miniapp_sync.sandbox import Sandbox, SandboxConfig

SECRET = b"sandbox-webhook-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=5000)
    args = parser.parse_args()
    sandbox = Sandbox(SandboxConfig(products=40, customers=40, orders=200, carts=0))
    bodies = [sandbox.webhook("order.created", order)[0] for order in sandbox.data["orders"][:50]]

    def floor() -> None:
        for raw in bodies:
            orjson.loads(raw)
            hmac.digest(SECRET, raw, "sha256")

    def ours() -> None:
        for raw in bodies:
            exactjson.loads(raw)
            hmac.digest(SECRET, raw, "sha256")
            hashlib.sha256(raw).digest()

    per = len(bodies) * args.number // 50
    runs = {"floor": [], "ours": []}  # type: dict[str, list[float]]
    for _ in range(args.rounds):  # interleaved, so a busy moment hits both
        for name, work in (("floor", floor), ("ours", ours)):
            runs[name].append(timeit.timeit(work, number=args.number // 50) / per * 1e6)
    base, mine = statistics.median(runs["floor"]), statistics.median(runs["ours"])
    size = statistics.mean(len(raw) for raw in bodies) / 1000
    print(f"{len(bodies)} order.created bodies of ~{size:.1f} kB, median of {args.rounds} rounds")
    print(f"floor  orjson.loads + HMAC-SHA256:                {base:7.1f} µs/delivery")
    print(f"ours   exactjson.loads + HMAC-SHA256 + SHA-256:   {mine:7.1f} µs/delivery")
    print(f"added: {mine - base:.1f} µs/delivery ({mine / base:.2f}x the floor)")


if __name__ == "__main__":
    main()
