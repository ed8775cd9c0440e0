#!/usr/bin/env python3
"""Request cost of `contacts_export` next to `contacts`: starts a sandbox with
N contacts (default 20000), reads each stream once (full refresh) and prints
the API requests the sandbox served for each read (from `/__sandbox/state`
`request_counts`, the token endpoint left out), with records and seconds.

    cargo build --release && python3 scripts/bench_requests_export.py [N]

Uses target/release, else target/debug (request counts do not depend on the
build). The export's time is mostly its polls' waits (1 s, then 2 s, ...).
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDS = [os.path.join(ROOT, "target", b, "source-constant-contact") for b in ("release", "debug")]
RPS = 100
STREAMS = ["contacts", "contacts_export"]


def request_counts(origin: str) -> dict:
    with urllib.request.urlopen(f"{origin}/__sandbox/state") as answer:
        return json.load(answer)["request_counts"]


def read(binary: str, config: dict, stream: str, origin: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        config_path = os.path.join(tmp, "config.json")
        catalog_path = os.path.join(tmp, "catalog.json")
        with open(config_path, "w") as f:
            json.dump(config, f)
        with open(catalog_path, "w") as f:
            json.dump({"streams": [{"stream": {"name": stream},
                                    "sync_mode": "full_refresh",
                                    "destination_sync_mode": "overwrite"}]}, f)
        before = request_counts(origin)
        start = time.monotonic()
        run = subprocess.run([binary, "read", "--config", config_path, "--catalog", catalog_path],
                             capture_output=True, check=False)
        elapsed = time.monotonic() - start
        if run.returncode != 0:
            sys.exit(f"{stream}: read failed ({run.returncode}): {run.stdout[-2000:]!r}")
        after = request_counts(origin)
        records, new_config = 0, None
        for line in run.stdout.splitlines():
            message = json.loads(line)
            if message["type"] == "RECORD":
                records += 1
            elif message["type"] == "CONTROL":
                new_config = message["control"]["connectorConfig"]["config"]
        spent = {route: n - before.get(route, 0) for route, n in after.items()
                 if " /v3/" in route and n > before.get(route, 0)}
        return {"stream": stream, "records": records, "requests": sum(spent.values()),
                "routes": spent, "seconds": round(elapsed, 1), "config": new_config or config}


def main() -> None:
    contacts = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    binary = next((b for b in BUILDS if os.path.exists(b)), None)
    if binary is None:
        sys.exit("build first: cargo build --release")
    sandbox = subprocess.Popen(
        [binary, "sandbox", "--contacts", str(contacts), "--rps", str(RPS),
         "--daily-limit", "1000000"],
        stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(sandbox.stdout.readline())
        origin = info["base_url"].removesuffix("/v3")
        config = dict(info["config"], requests_per_second=RPS)
        print(f"{contacts} sandbox contacts")
        print(f"{'stream':>16} {'records':>8} {'requests':>9} {'seconds':>8}  routes")
        for stream in STREAMS:
            result = read(binary, config, stream, origin)
            config = result["config"]
            routes = ", ".join(f"{r} x{n}" for r, n in sorted(result["routes"].items()))
            print(f"{stream:>16} {result['records']:>8} {result['requests']:>9} "
                  f"{result['seconds']:>8}  {routes}")
    finally:
        sandbox.kill()
        sandbox.wait()


if __name__ == "__main__":
    main()
