#!/usr/bin/env python3
"""Request-cost and throughput benchmark against the sandbox.

Uses the release binary as built (it builds nothing):

    cargo build --release && python3 scripts/bench_requests.py

1. Requests per stream, counted by the sandbox (`/__sandbox/state`
   `request_counts`, diffed around each run): a full sync, then a no-change
   incremental sync from its saved state (the last STATE per stream, and the
   config of the last CONTROL message: refresh tokens rotate), then an
   incremental sync after `mutate {"tracking": 5}` (5 new opens and 5 new
   clicks on one activity). Streams share routes (parents are read for
   every child), so each stream is read alone for its row; the whole catalog
   is then read once more, together, for the total a real sync spends
   (parents read once per run, however many children).
2. Throughput at the real API's pace: a full sync of every stream against
   `sandbox --latency-ms 300 --rps 4` with `requests_per_second: 4`, and a
   lone `contacts` read of 20,000 contacts (40 pages): requests per wall
   second.

Python 3 standard library only. `--help` for the sizes.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")),
                   "release", "source-constant-contact")
TOKEN_ROUTE = "POST /oauth2/default/v1/token"


class Sandbox:
    """A `source-constant-contact sandbox` process, stopped on exit."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([BIN, "sandbox", *args], stdout=subprocess.PIPE, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.origin = info["base_url"].rsplit("/v3", 1)[0]
        self.config = info["config"]

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.proc.kill()
        self.proc.wait()

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self.origin}/__sandbox/state") as r:
            return json.load(r)

    def counts(self) -> dict:
        return self.state()["request_counts"]

    def mutate(self, body: dict) -> dict:
        request = urllib.request.Request(
            f"{self.origin}/__sandbox/mutate", data=json.dumps(body).encode(),
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request) as r:
            return json.load(r)


def spent(before: dict, after: dict) -> tuple:
    """(API requests, token requests) served between two `request_counts`."""
    diff = {route: n - before.get(route, 0) for route, n in after.items()}
    api = sum(n for route, n in diff.items() if " /v3/" in route)
    return api, diff.get(TOKEN_ROUTE, 0)


class Connector:
    """Runs the release binary with files in a temporary directory and its
    own token cache (never the user's)."""

    def __init__(self, tmp: str, config: dict):
        self.tmp = tmp
        self.config = config
        self.env = dict(os.environ, SOURCE_CONSTANT_CONTACT_TOKEN_CACHE=os.path.join(tmp, "tokens.json"))
        self.env.pop("SOURCE_CONSTANT_CONTACT_PROGRESS", None)

    def write(self, name: str, value) -> str:
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(value, f)
        return path

    def discover(self) -> list:
        out = subprocess.run([BIN, "discover", "--config", self.write("config.json", self.config)],
                             capture_output=True, text=True, env=self.env, check=True).stdout
        return json.loads(out.splitlines()[0])["catalog"]["streams"]

    def read(self, catalog: dict, state: list = None) -> dict:
        """One `read`: records and the last state per stream, seconds. The
        config of a CONTROL message is kept for the next run."""
        args = [BIN, "read", "--config", self.write("config.json", self.config),
                "--catalog", self.write("catalog.json", catalog)]
        if state is not None:
            args += ["--state", self.write("state.json", state)]
        start = time.monotonic()
        proc = subprocess.run(args, capture_output=True, env=self.env)
        seconds = time.monotonic() - start
        records, states, errors = {}, {}, []
        for line in proc.stdout.splitlines():
            message = json.loads(line)
            kind = message["type"]
            if kind == "RECORD":
                stream = message["record"]["stream"]
                records[stream] = records.get(stream, 0) + 1
            elif kind == "STATE":
                states[message["state"]["stream"]["stream_descriptor"]["name"]] = message["state"]
            elif kind == "CONTROL":
                self.config = message["control"]["connectorConfig"]["config"]
            elif kind == "TRACE" and message["trace"]["type"] == "ERROR":
                errors.append(message["trace"]["error"]["message"])
        if proc.returncode != 0 or errors:
            sys.exit(f"read failed ({proc.returncode}): {errors or proc.stderr.decode()}")
        return {"records": records, "states": states, "seconds": seconds}


def configured(discovered: list, names: list) -> dict:
    """The configured catalog of `names`, incremental where supported (as
    the tests build them)."""
    by_name = {s["name"]: s for s in discovered}
    entries = []
    for name in names:
        stream = by_name[name]
        incremental = "incremental" in stream["supported_sync_modes"]
        entries.append({"stream": stream,
                        "sync_mode": "incremental" if incremental else "full_refresh",
                        "destination_sync_mode": "append_dedup" if incremental else "overwrite"})
    return {"streams": entries}


def counted(sandbox: Sandbox, connector: Connector, catalog: dict, state=None) -> tuple:
    before = sandbox.counts()
    run = connector.read(catalog, state)
    api, token = spent(before, sandbox.counts())
    return run, api, token


def request_costs(contacts: int) -> None:
    print(f"Requests per stream ({contacts} sandbox contacts; full sync, then a no-change "
          f"incremental sync from its state, then one after mutate {{\"tracking\": 5}}).")
    print("Each stream read alone (its parents included); API requests, token requests apart.\n")
    # The sandbox's daily quota (10,000) would stop the per-stream runs.
    sandbox_args = ["--contacts", str(contacts), "--rps", "100", "--daily-limit", "10000000"]
    with Sandbox(*sandbox_args) as sandbox, tempfile.TemporaryDirectory() as tmp:
        connector = Connector(tmp, dict(sandbox.config, requests_per_second=100))
        discovered = connector.discover()
        names = [s["name"] for s in discovered]
        modes = {s["name"]: "incr" if "incremental" in s["supported_sync_modes"] else "full"
                 for s in discovered}
        rows = {name: {} for name in names}
        tokens = 0
        for phase in ("full", "nochange", "tracking"):
            if phase == "tracking":
                sandbox.mutate({"tracking": 5})
            for name in names:
                catalog = configured(discovered, [name])
                state = None if phase == "full" else [rows[name]["state"]]
                run, api, token = counted(sandbox, connector, catalog, state)
                tokens += token
                rows[name][phase] = api
                rows[name][phase + "_records"] = run["records"].get(name, 0)
                rows[name]["state"] = run["states"][name]

    with Sandbox(*sandbox_args) as sandbox, tempfile.TemporaryDirectory() as tmp:
        connector = Connector(tmp, dict(sandbox.config, requests_per_second=100))
        catalog = configured(discovered, names)
        together = {}
        full, together["full"], _ = counted(sandbox, connector, catalog)
        state = list(full["states"].values())
        nochange, together["nochange"], _ = counted(sandbox, connector, catalog, state)
        sandbox.mutate({"tracking": 5})
        state = list(nochange["states"].values())
        _, together["tracking"], _ = counted(sandbox, connector, catalog, state)

    width = max(len(n) for n in names)
    print(f"{'':<{width}}        {'full sync':>15}  {'no change':>15}  {'+tracking 5':>15}")
    print(f"{'stream':<{width}}  mode" + f"  {'requests':>8} {'records':>6}" * 3)
    for name in names:
        r = rows[name]
        cells = "".join(f"  {r[p]:>8} {r[p + '_records']:>6}" for p in ("full", "nochange", "tracking"))
        print(f"{name:<{width}}  {modes[name]:<4}{cells}")
    phases = ("full", "nochange", "tracking")
    for label, counts in (("sum of the streams read alone", {p: sum(rows[n][p] for n in names) for p in phases}),
                          ("all streams read together", together)):
        cells = "".join(f"  {counts[p]:>8} {'':>6}" for p in phases)
        print(f"{label:<{width}}  {'':<4}{cells}")
    print(f"(token requests over the {3 * len(names)} single-stream runs: {tokens})\n")


def throughput(contacts: int, lone_contacts: int, latency_ms: int, rps: int) -> None:
    print(f"Throughput against sandbox --latency-ms {latency_ms} --rps {rps}, "
          f"connector requests_per_second: {rps}.\n")
    print(f"{'run':<36} {'requests':>8} {'seconds':>8} {'requests/s':>10} {'records':>8}")
    runs = [(f"all streams, full ({contacts} contacts)", contacts, None),
            (f"contacts alone ({lone_contacts} contacts)", lone_contacts, ["contacts"])]
    for label, size, only in runs:
        args = ["--contacts", str(size), "--latency-ms", str(latency_ms), "--rps", str(rps),
                "--daily-limit", "10000000"]
        with Sandbox(*args) as sandbox, tempfile.TemporaryDirectory() as tmp:
            connector = Connector(tmp, dict(sandbox.config, requests_per_second=rps))
            discovered = connector.discover()
            names = only or [s["name"] for s in discovered]
            run, api, token = counted(sandbox, connector, configured(discovered, names))
            requests = api + token
            records = sum(run["records"].values())
            print(f"{label:<36} {requests:>8} {run['seconds']:>8.1f} "
                  f"{requests / run['seconds']:>10.2f} {records:>8}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1000,
                        help="sandbox contacts for the request counts and the all-streams "
                             "throughput run (default 1000, the sandbox's)")
    parser.add_argument("--lone-contacts", type=int, default=20000,
                        help="contacts for the lone contacts throughput run (default 20000: 40 pages)")
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--rps", type=int, default=4,
                        help="requests/s of the sandbox and the connector in the throughput runs")
    parser.add_argument("--skip-costs", action="store_true", help="no per-stream request counts")
    parser.add_argument("--skip-throughput", action="store_true", help="no throughput runs")
    options = parser.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    started = time.monotonic()
    if not options.skip_costs:
        request_costs(options.contacts)
    if not options.skip_throughput:
        throughput(options.contacts, options.lone_contacts, options.latency_ms, options.rps)
    print(f"({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
