"""Run by test_request_log's crash test as a real subprocess, then SIGKILLed: records
entries with a live writer thread, prints each index it has flushed explicitly, then
records more and waits to be killed."""

from __future__ import annotations

import sys
import time

from app.gateway.request_log import RequestLog
from db.engine import make_engine


def main(url: str, flushed: int, unflushed: int, deployment_id: int) -> None:
    log = RequestLog(make_engine(url), flush_interval_s=0.02, max_batch=50)
    for i in range(flushed + unflushed):
        log.record({"request_id": f"r{i}", "status_code": 200, "deployment_id": deployment_id})
        if i + 1 == flushed:
            log.flush()
            print(f"flushed {flushed}", flush=True)
    print("recorded", flush=True)
    time.sleep(600)  # killed before this ends


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
