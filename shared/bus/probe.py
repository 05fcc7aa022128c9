"""Does a Kafka-protocol broker answer? Used by start-up scripts, tests and health checks.

Command line: `python -m pathstream.shared.bus.probe 127.0.0.1:9092 [--timeout SECONDS]` exits 0 when the
broker returns cluster metadata, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from aiokafka.admin import AIOKafkaAdminClient


async def broker_answers(bootstrap: str, timeout_s: float) -> bool:
    """True when the broker returns cluster metadata within `timeout_s` seconds."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout_s)
        return True
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("bootstrap")
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # a refused connection is an answer here
    return 0 if asyncio.run(broker_answers(args.bootstrap, args.timeout)) else 1


if __name__ == "__main__":
    sys.exit(main())
