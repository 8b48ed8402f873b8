"""A BtpPlugin listener with a durable trustline, as a child process the tests can SIGKILL.

`python -m v2.trustline_worker PORT STORE MAXIMUM` (tests/ on the path) listens on 127.0.0.1:PORT
with `balance.maximum` MAXIMUM on STORE, fulfils every Prepare of the tests' condition after a
short random delay (so some are in flight when it is killed), prints "ready" once bound, and runs
until killed.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys

from ilp_paychan.codec import ilp4
from ilp_paychan.v2.plugin import BtpPlugin

SECRET = "v2_secret"
FULFILLMENT = bytes(range(32))
CONDITION = hashlib.sha256(FULFILLMENT).digest()


async def main(port: int, store: str, maximum: str) -> None:
    """Listen, fulfil, never return."""
    plugin = BtpPlugin(
        {
            "listener": {"port": port, "host": "127.0.0.1", "secret": SECRET},
            "balance": {"maximum": maximum},
            "store": store,
        }
    )
    fulfil = ilp4.encode_fulfill(ilp4.IlpFulfill(FULFILLMENT, b""))

    async def handler(data: bytes) -> bytes:
        await asyncio.sleep(random.uniform(0, 0.03))
        return fulfil

    plugin.register_data_handler(handler)
    await plugin.connect()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
