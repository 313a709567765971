"""``python -m miniapp_sync.sandbox``: serve the sandbox provider in the foreground."""

from __future__ import annotations

import argparse

from miniapp_sync.sandbox.runner import run


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m miniapp_sync.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API response")
    parser.add_argument("--rate-limit", type=float, default=None, help="requests per second per access token")
    parser.add_argument("--tenants", type=int, default=1, help="stores served, each with its own tokens and budget")
    for name, default in (("products", 120), ("customers", 80), ("orders", 150), ("carts", 30)):
        parser.add_argument(f"--{name}", type=int, default=default, help=f"how many {name} (default {default})")
    args = vars(parser.parse_args(argv))
    run(**args)


if __name__ == "__main__":
    main()
