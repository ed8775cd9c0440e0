#!/usr/bin/env python3
"""The budget benchmark: what a sync costs in requests, time, CPU and memory,
for the sandbox's default account and a large one.

Uses the release binary as built (it builds nothing):

    cargo build --release && python3 scripts/bench.py [--profiles default,large]

For each profile (default: 1,000 contacts and 30 campaigns, the sandbox's
account; large: 100,000 contacts and 300 campaigns) it reads every stream
that `demo` reads (incremental where supported) and prints:

1. Requests, counted by the sandbox (API requests; token requests apart):
   - a full sync;
   - a no-change incremental sync from its state (the last STATE per stream,
     the config of the last CONTROL message: refresh tokens rotate);
   - an incremental sync after a typical day of changes (`mutate`: 1% of
     contacts edited, 0.2% unsubscribed, 0.1% moved between lists, 0.05%
     deleted, 1% of campaigns edited, a draft sent, 25 new opens and clicks).
   These runs open both sides to 100 requests/s, so they measure the
   connector: its CPU time (user + sys) and records per CPU-second, and its
   peak RSS, are those of the full sync.
2. Pace at the real API's limits, against `sandbox --latency-ms 300 --rps 4`
   with `requests_per_second: 4`: a full sync of every stream, capped with
   `max_requests_per_run` (default 1,000, so the large profile ends in minutes;
   the capped run stops cleanly), and `contacts` alone; requests per wall
   second and the 429s the sandbox answered.

Python 3 standard library only. `--help` for the options.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench_requests import BIN, Sandbox, configured

PROFILES = {"default": (1_000, 30), "large": (100_000, 300)}
OPT_IN = {"contacts_export"}
RECORD_PREFIX = b'{"type":"RECORD","record":{"stream":"'


class Run:
    """One `read` of the release binary: records per stream, the last state
    per stream, seconds, CPU seconds and peak RSS (of the connector alone)."""

    def __init__(self, tmp: str, config: dict, catalog: dict, state: list = None):
        def write(name, value):
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                json.dump(value, f)
            return path
        args = [BIN, "read", "--config", write("config.json", config),
                "--catalog", write("catalog.json", catalog)]
        if state is not None:
            args += ["--state", write("state.json", state)]
        env = dict(os.environ, SOURCE_CONSTANT_CONTACT_TOKEN_CACHE=os.path.join(tmp, "tokens.json"))
        env.pop("SOURCE_CONSTANT_CONTACT_PROGRESS", None)
        self.records, self.states, self.config, errors = {}, {}, config, []
        start = time.monotonic()
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        for line in proc.stdout:
            if line.startswith(RECORD_PREFIX):
                stream = line[len(RECORD_PREFIX):line.index(b'"', len(RECORD_PREFIX))].decode()
                self.records[stream] = self.records.get(stream, 0) + 1
                continue
            message = json.loads(line)
            kind = message["type"]
            if kind == "STATE":
                self.states[message["state"]["stream"]["stream_descriptor"]["name"]] = message["state"]
            elif kind == "CONTROL":
                self.config = message["control"]["connectorConfig"]["config"]
            elif kind == "TRACE" and message["trace"]["type"] == "ERROR":
                errors.append(message["trace"]["error"]["message"])
        _, status, usage = os.wait4(proc.pid, 0)
        self.seconds = time.monotonic() - start
        self.cpu = usage.ru_utime + usage.ru_stime
        self.peak_rss_mib = usage.ru_maxrss / 1024
        if status != 0 or errors:
            sys.exit(f"read failed ({status}): {errors}")

    def total_records(self) -> int:
        return sum(self.records.values())


def discover(tmp: str, config: dict) -> list:
    path = os.path.join(tmp, "discover-config.json")
    with open(path, "w") as f:
        json.dump(config, f)
    out = subprocess.run([BIN, "discover", "--config", path], capture_output=True, check=True).stdout
    return json.loads(out.splitlines()[0])["catalog"]["streams"]


def api_requests(before: dict, after: dict) -> int:
    counts, earlier = after["request_counts"], before["request_counts"]
    return sum(n - earlier.get(route, 0) for route, n in counts.items() if " /v3/" in route)


def typical_day(contacts: int, campaigns: int) -> dict:
    return {"contacts": max(1, contacts // 100), "unsubscribe_contacts": max(1, contacts // 500),
            "list_membership_changes": max(1, contacts // 1000),
            "delete_contacts": max(1, contacts // 2000), "campaigns": max(1, campaigns // 100),
            "send_campaign": True, "tracking": 25}


def costs(contacts: int, campaigns: int) -> dict:
    """Requests of the three syncs, and the full sync's CPU and memory."""
    args = ["--contacts", str(contacts), "--campaigns", str(campaigns), "--rps", "100",
            "--daily-limit", "100000000"]
    with Sandbox(*args) as sandbox, tempfile.TemporaryDirectory() as tmp:
        config = dict(sandbox.config, requests_per_second=100)
        discovered = discover(tmp, config)
        catalog = configured(discovered, [s["name"] for s in discovered if s["name"] not in OPT_IN])
        result = {}
        state = None
        for phase in ("full", "no change", "typical day"):
            if phase == "typical day":
                sandbox.mutate(typical_day(contacts, campaigns))
            before = sandbox.state()
            run = Run(tmp, config, catalog, state)
            after = sandbox.state()
            result[phase] = api_requests(before, after)
            result[phase + " records"] = run.total_records()
            if phase == "full":
                result["records/CPU-s"] = round(run.total_records() / run.cpu) if run.cpu else None
                result["CPU s"] = round(run.cpu, 2)
                result["peak RSS MiB"] = round(run.peak_rss_mib, 1)
            config = run.config
            state = list(run.states.values())
        return result


def pace(contacts: int, campaigns: int, latency_ms: int, rps: int, cap: int, only: list = None) -> dict:
    """Requests per wall second at the API's pace, and the 429s answered."""
    args = ["--contacts", str(contacts), "--campaigns", str(campaigns), "--latency-ms",
            str(latency_ms), "--rps", str(rps), "--daily-limit", "100000000"]
    with Sandbox(*args) as sandbox, tempfile.TemporaryDirectory() as tmp:
        config = dict(sandbox.config, requests_per_second=rps)
        if cap:
            config["max_requests_per_run"] = cap
        discovered = discover(tmp, config)
        names = only or [s["name"] for s in discovered if s["name"] not in OPT_IN]
        before = sandbox.state()
        run = Run(tmp, config, configured(discovered, names))
        after = sandbox.state()
        requests = api_requests(before, after) + after["token_requests"] - before["token_requests"]
        return {"requests": requests, "seconds": round(run.seconds, 1),
                "requests/s": round(requests / run.seconds, 2),
                "429s": after["rate_limit_429s"] - before["rate_limit_429s"],
                "records": run.total_records()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default="default,large",
                        help="comma-separated: " + ", ".join(PROFILES))
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--rps", type=int, default=4)
    parser.add_argument("--cap", type=int, default=1000,
                        help="max_requests_per_run of the paced full sync (0: none)")
    options = parser.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"build first: cargo build --release ({BIN} is missing)")
    started = time.monotonic()
    for name in options.profiles.split(","):
        contacts, campaigns = PROFILES[name]
        print(f"profile {name}: {contacts:,} contacts, {campaigns} campaigns", flush=True)
        c = costs(contacts, campaigns)
        print(f"  requests: full sync {c['full']:,} ({c['full records']:,} records), "
              f"no-change incremental {c['no change']:,}, after a typical day "
              f"{c['typical day']:,} ({c['typical day records']:,} records)")
        print(f"  full sync: {c['CPU s']} CPU s, {c['records/CPU-s']:,} records/CPU-s, "
              f"peak RSS {c['peak RSS MiB']} MiB", flush=True)
        runs = [("all streams", None, options.cap)]
        if contacts >= 10_000:  # fewer are a few pages: no pace to measure
            runs.append(("contacts alone", ["contacts"], 0))
        for label, only, cap in runs:
            p = pace(contacts, campaigns, options.latency_ms, options.rps, cap, only)
            capped = f", capped at {cap}" if cap else ""
            print(f"  at {options.latency_ms} ms and {options.rps}/s, {label}{capped}: "
                  f"{p['requests']:,} requests in {p['seconds']} s = {p['requests/s']} requests/s, "
                  f"{p['429s']} 429s, {p['records']:,} records", flush=True)
    print(f"({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
