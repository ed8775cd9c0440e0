"""Runs in the PyAirbyte virtual environment (not the test runner's): drives
the connector binary through PyAirbyte into its default DuckDB cache and
writes what it found as JSON for test_pyairbyte.py.

usage: python pyairbyte_read.py BINARY CONFIG_JSON OUT_JSON
(run with the working directory where the `.cache` folder should go)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import airbyte as ab


def main() -> None:
    binary, config_path, out_path = sys.argv[1:4]
    config = json.loads(Path(config_path).read_text())
    config_changes: list[dict] = []

    source = ab.get_source(
        "source-constant-contact",
        local_executable=binary,
        config=config,
        config_change_callback=config_changes.append,
    )
    source.check()
    # Every stream but the opt-in ones: contacts_export (a bulk export job) and
    # the social streams (a request each run for a few records).
    opt_in = {"contacts_export", "social_profiles", "social_connections", "social_hashtag_groups"}
    source.select_streams([s for s in source.get_available_streams() if s not in opt_in])
    cache = ab.get_default_cache()
    result = source.read(cache=cache)

    counts: dict[str, int] = {}
    distinct_keys: dict[str, int] = {}
    samples: dict[str, list[dict]] = {}
    keys = {
        "contacts": "contact_id",
        "email_campaigns": "campaign_id",
        "contact_lists": "list_id",
        "user_privileges": "privilege_id",
    }
    for name, dataset in result.streams.items():
        counts[name] = len(dataset)
        if name in keys:
            distinct_keys[name] = int(dataset.to_pandas()[keys[name]].nunique())
    # A few contacts as PyAirbyte stored them, to see nested objects survive.
    for row in list(result["contacts"])[:5]:
        samples.setdefault("contacts", []).append(
            {k: (v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)) for k, v in row.items()}
        )

    Path(out_path).write_text(
        json.dumps(
            {
                "airbyte_version": ab.__version__ if hasattr(ab, "__version__") else None,
                "counts": counts,
                "distinct_keys": distinct_keys,
                "processed_records": result.processed_records,
                "config_changes": len(config_changes),
                "cache_path": str(cache.db_path),
                "samples": samples,
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    main()
