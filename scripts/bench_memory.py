#!/usr/bin/env python3
"""Memory, throughput and CPU benchmark: reads N sandbox contacts through the
release binary and prints records/s, the connector's CPU time (user + sys),
records per CPU-second and its peak RSS, for each N given (default 20000 and
200000), so flat memory as N grows is visible. Records per CPU-second is the
measure that does not depend on the sandbox (which runs on the same machine
and competes for its cores).

    cargo build --release && python3 scripts/bench_memory.py [N ...]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Cargo puts the binary under CARGO_TARGET_DIR when that is set.
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"),
                   "release", "source-constant-contact")
# The real API allows 4 requests/s; the benchmark measures the connector,
# so both sides are opened up.
RPS = 100


def bench(contacts: int) -> dict:
    sandbox = subprocess.Popen(
        [BIN, "sandbox", "--contacts", str(contacts), "--rps", str(RPS)],
        stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(sandbox.stdout.readline())
        config = dict(info["config"], requests_per_second=RPS)
        with tempfile.TemporaryDirectory() as tmp:
            config_path = os.path.join(tmp, "config.json")
            catalog_path = os.path.join(tmp, "catalog.json")
            with open(config_path, "w") as f:
                json.dump(config, f)
            with open(catalog_path, "w") as f:
                json.dump({"streams": [{"stream": {"name": "contacts"},
                                        "sync_mode": "full_refresh",
                                        "destination_sync_mode": "overwrite"}]}, f)
            start = time.monotonic()
            reader = subprocess.Popen(
                [BIN, "read", "--config", config_path, "--catalog", catalog_path],
                stdout=subprocess.PIPE)
            records = 0
            for line in reader.stdout:
                if line.startswith(b'{"type":"RECORD"'):
                    records += 1
            _, status, usage = os.wait4(reader.pid, 0)
            elapsed = time.monotonic() - start
            if status != 0:
                sys.exit(f"read failed with status {status}")
            if records != contacts:
                sys.exit(f"read {records} records, expected {contacts}")
            cpu = usage.ru_utime + usage.ru_stime
            return {"contacts": contacts, "records_per_s": round(records / elapsed),
                    "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2),
                    "records_per_cpu_s": round(records / cpu) if cpu > 0 else None,
                    "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}
    finally:
        sandbox.kill()
        sandbox.wait()


def main() -> None:
    sizes = [int(n) for n in sys.argv[1:]] or [20_000, 200_000]
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    print(f"{'contacts':>10} {'records/s':>10} {'seconds':>8} {'CPU s':>7} "
          f"{'records/CPU-s':>14} {'peak RSS MiB':>13}")
    for n in sizes:
        r = bench(n)
        print(f"{r['contacts']:>10} {r['records_per_s']:>10} {r['seconds']:>8} "
              f"{r['cpu_seconds']:>7} {r['records_per_cpu_s']:>14} {r['peak_rss_mib']:>13}", flush=True)


if __name__ == "__main__":
    main()
