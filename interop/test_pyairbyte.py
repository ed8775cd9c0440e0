"""Item 7: PyAirbyte runs the binary as a local executable, checks it, selects
every stream and reads them into its default DuckDB cache; each stream's row
count equals the sandbox's. PyAirbyte configures every stream as incremental;
the connector reads full-refresh-only streams in full."""

from __future__ import annotations

import json
from pathlib import Path

from support import (
    INTEROP,
    AirbyteConfigStore,
    binary,
    require_env,
    require_executable,
    run,
    run_airbyte,
    tool_env,
    write_json,
)


def test_pyairbyte_reads_every_stream_into_duckdb(sandbox, tmp_path: Path):
    python = require_executable(require_env("INTEROP_PYAIRBYTE_PYTHON", "the python of the PyAirbyte venv"), "PyAirbyte's python")

    # PyAirbyte keeps the config it was given: the rotated refresh token of a
    # CONTROL message would be lost between its runs of the connector. A first
    # Airbyte run hands us an access token (and its expiry) that needs no
    # refresh, as the platform would store it.
    store = AirbyteConfigStore(sandbox.config, tmp_path)
    run_airbyte(store, "check")
    creds = store.config["credentials"]
    assert creds.get("access_token") and creds.get("token_expiry_date"), f"CONTROL config without a token: {list(creds)}"
    config_path = write_json(tmp_path / "pyairbyte-config.json", store.config)

    expected = sandbox.read_counts()
    token_requests = sandbox.state()["token_requests"]
    workdir = tmp_path / "pyairbyte"
    workdir.mkdir()
    out = workdir / "result.json"
    r = run([python, INTEROP / "pyairbyte_read.py", binary(), config_path, out], cwd=workdir, env=tool_env(AIRBYTE_LOGGING_ROOT=str(workdir / "logs")), timeout=900, check=False)
    assert r.returncode == 0 and out.exists(), f"PyAirbyte failed\n{r.describe(6000)}"
    result = json.loads(out.read_text())
    print(json.dumps({k: result[k] for k in ("counts", "distinct_keys", "processed_records", "config_changes", "cache_path")}, indent=2))

    assert Path(result["cache_path"]).exists(), f"no DuckDB file at {result['cache_path']}"
    assert result["counts"] == expected, f"PyAirbyte's DuckDB row counts {result['counts']} != the sandbox's {expected}"
    for stream, distinct in result["distinct_keys"].items():
        assert distinct == expected[stream], f"{stream}: {distinct} distinct keys in DuckDB, want {expected[stream]}"
    assert result["processed_records"] == sum(expected.values()), result["processed_records"]
    contact = result["samples"]["contacts"][0]
    email = contact["email_address"]
    if isinstance(email, str):
        email = json.loads(email)
    assert isinstance(email, dict) and "@" in email.get("address", ""), f"contacts.email_address as PyAirbyte stored it: {email!r}"
    assert sandbox.state()["token_requests"] == token_requests, "the connector refreshed its token although the config held a valid access token"
