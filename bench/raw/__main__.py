"""``python -m bench.raw gateway|append|relay|history``: one step of the raw pipeline."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from bench.raw import gateway, steps
from bench.raw.config import RawConfig


def main() -> int:
    step = sys.argv[1] if len(sys.argv) > 1 else ""
    config = RawConfig.from_env()
    if step == "gateway":
        gateway.main(config)
        return 0
    work = {"append": steps.append, "relay": steps.relay, "history": steps.history}.get(step)
    if work is None:
        print("usage: python -m bench.raw gateway|append|relay|history", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(work(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
