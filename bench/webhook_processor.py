"""Benchmark: the inbox processor alone, CPU per delivery (issue #17 item 4), apart from the receiver.

Setup: a fresh SQLite store (WAL, synchronous=FULL) with one installation of the example Salla
definition and one trigger subscription; its inbox is filled beforehand with ``--count`` signed
``order.created`` deliveries (~5 kB, line items and a customer, unique order ids) as the receiver
stores them. Then ``Processor.settle`` processes them all in this process, as ``serve``'s processor
does (batches per installation: customer, order, history, trigger event, rows settled), timed
with ``time.process_time``: CPU seconds, the figure that survives a busy machine. The commits'
fsyncs are waits, not CPU, and not counted. ``--new-customers``: each delivery carries a customer
never seen (its own id, email and phone); else they come from the sandbox's 40. ``--deliver``:
the trigger POSTs are then sent to a bare uvicorn endpoint in a child process, timed apart.

Run: ``.venv/bin/python bench/webhook_processor.py [--count 3000] [--new-customers] [--deliver]``
(seconds). ``bench/webhook_load.py`` measures the whole ``serve`` under a steady rate.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import orjson
from webhook_ingest import DEFINITION, KEY, Delivery, deliveries, free_port, prepare_store, server

from miniapp_sync import exactjson
from miniapp_sync.runtime import Runtime, load_miniapp
from miniapp_sync.sandbox import Sandbox, SandboxConfig
from miniapp_sync.store import Inbox, InboxEntry, Outbox
from miniapp_sync.webhooks.concurrency import caller
from miniapp_sync.webhooks.delivery import TriggerDelivery, seal
from miniapp_sync.webhooks.processor import Processor

BENCH = Path(__file__).resolve().parent


def new_customer(raw: bytes, n: int) -> bytes:
    """Return a delivery whose customer is the ``n``-th never seen: its own id, email and phone."""
    body = orjson.loads(raw)
    customer = {**body["data"]["customer"], "id": 2_000_000_000 + n, "email": f"buyer{n}@example.com"}
    customer["mobile"] = 500_000_000 + n
    return orjson.dumps({**body, "data": {**body["data"], "customer": customer}})


async def measure(store: Path, load: list[Delivery], subscriber: str, deliver: bool) -> tuple[float, float | None]:
    """Fill the inbox, process it; return CPU seconds of processing (and of delivery, with ``deliver``)."""
    with Runtime.open(str(store), environ=KEY) as runtime:
        runtime.add(load_miniapp(DEFINITION))
        outbox = Outbox(runtime.store)
        outbox.subscribe("bench", "salla", subscriber, seal(runtime.installations.vault, "bench-subscriber"))
        inbox = Inbox(runtime.store)
        installation = runtime.store.list_installations()[0].id
        entries = [
            InboxEntry("salla", installation, "order.created", str(exactjson.loads(raw)["data"]["id"]), "pending", raw)
            for raw, _ in load
        ]
        for start in range(0, len(entries), 500):
            inbox.add(entries[start : start + 500])
        started = time.process_time()
        await Processor(runtime, inbox).settle()
        processing = time.process_time() - started
        if inbox.counts() != {"done": len(load)}:
            raise SystemExit(f"not every delivery was processed: {inbox.counts()}")
        if not deliver:
            return processing, None
        # Store calls as serve's processor makes them (inline on SQLite), not asyncio.to_thread's default.
        call = caller(runtime.backend.inline_store_calls)
        delivery = TriggerDelivery(outbox, runtime.installations.vault, runtime.clock, call=call)
        started = time.process_time()
        await delivery.settle()
        sending = time.process_time() - started
        await delivery.close()
        return processing, sending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000, help="deliveries in the inbox")
    parser.add_argument("--new-customers", action="store_true", help="each delivery's customer is new")
    parser.add_argument("--deliver", action="store_true", help="then POST the trigger events, timed apart")
    args = parser.parse_args()
    sandbox = Sandbox(SandboxConfig(products=40, customers=40, orders=200, carts=0))
    load = deliveries(sandbox, args.count, 10_000_000)
    if args.new_customers:
        load = [(new_customer(raw, n), headers) for n, (raw, headers) in enumerate(load)]
    port = free_port()
    bare = [sys.executable, str(BENCH / "webhook_ingest.py"), "--bare-server", str(port)]
    with tempfile.TemporaryDirectory() as tmp, server(bare, port):
        store = Path(tmp) / "store.sqlite"
        prepare_store(store, sandbox)
        processing, sending = asyncio.run(measure(store, load, f"http://127.0.0.1:{port}/", args.deliver))
    customers = "a new customer each" if args.new_customers else "customers from the sandbox's 40"
    print(f"{args.count:,} order.created deliveries, {customers}")
    print(f"  processing: {processing / args.count * 1e6:,.0f} µs CPU a delivery")
    if sending is not None:
        print(f"  trigger delivery: {sending / args.count * 1e6:,.0f} µs CPU an event")


if __name__ == "__main__":
    main()
