"""The checks the interop tests rely on do reject what they must: a harness
that accepts anything would let every other test pass."""

from __future__ import annotations

import pytest

from support import Run, check_records, format_checker, validate_airbyte_stdout

SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "string", "format": "uuid"}, "at": {"type": "string", "format": "date-time"}},
    "required": ["id"],
}


def fake_run(*lines: str) -> Run:
    return Run(["fake"], 0, "\n".join(lines) + "\n", "", list(lines))


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "",
        '{"type":"RECORD"}',
        '{"type":"RECORD","record":{"stream":"s","data":{}}}',
        '{"type":"BOGUS","log":{"level":"INFO","message":"x"}}',
        '{"type":"LOG","log":{"level":"LOUD","message":"x"}}',
        '{"type":"LOG","log":{"level":"INFO","message":"x","levle":"x"}}',
        '{"type":"LOG","log":{"level":"INFO","message":"x"},"record":{"stream":"s","data":{},"emitted_at":1}}',
    ],
)
def test_rejects_bad_airbyte_lines(line: str):
    with pytest.raises(pytest.fail.Exception):
        validate_airbyte_stdout(fake_run('{"type":"LOG","log":{"level":"INFO","message":"ok"}}', line))


def test_accepts_good_airbyte_lines():
    validate_airbyte_stdout(fake_run(
        '{"type":"RECORD","record":{"stream":"s","data":{"a":{"b":1}},"emitted_at":1700000000000}}',
        '{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"s"},"stream_state":{"x":1}}}}',
    ))


@pytest.mark.parametrize(
    "data",
    [
        {"id": "not-a-uuid"},
        {"id": "01ca3693-a2df-4e02-8a72-1201f4413ad4", "at": "2024-02-30T10:00:00Z"},
        {"id": "01ca3693-a2df-4e02-8a72-1201f4413ad4", "at": "2024-01-01 10:00"},
        {"at": "2024-01-01T10:00:00Z"},
    ],
)
def test_rejects_records_that_break_the_schema(data):
    with pytest.raises(pytest.fail.Exception):
        check_records([("s", data)], {"s": SCHEMA})


def test_accepts_valid_record_and_checks_formats():
    format_checker()
    assert check_records([("s", {"id": "01ca3693-a2df-4e02-8a72-1201f4413ad4", "at": "2024-01-01T10:00:00.123Z"})], {"s": SCHEMA}) == 1
