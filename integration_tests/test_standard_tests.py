"""Airbyte's standard connector tests, run on the Docker image.

airbyte-cdk's `DockerConnectorTestSuite` runs `spec`, `check`, `discover` and `read` in the
image for the configs of `acceptance-test-config.yml`. In airbyte-cdk 7.39.1 its image `discover`
and `read` tests only require the commands to succeed, so this suite adds the assertions
`SourceTestSuiteBase` makes on a Python connector's own output: the catalog checks of its
`test_discover` and the record checks of its `test_basic_read` (records in every stream read,
each valid against its stream's schema), applied to what the image printed.

    pytest integration_tests/test_standard_tests.py \
        --connector-image=airbyte/source-constant-contact:dev \
        --read-from-streams=all --read-scenarios=sample_config

needs a `docker` command and the sandbox the configs name (see .ci/image.sh). With
CC_STANDARD_TESTS_SANDBOX=http://127.0.0.1:PORT the configs' `api_base_url` and `token_url` point
at that sandbox instead of 127.0.0.1:8718, and CC_STANDARD_TESTS_RPS sets their
`requests_per_second`.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from airbyte_cdk.models import ConfiguredAirbyteCatalog, ConfiguredAirbyteCatalogSerializer, Type
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput
from airbyte_cdk.test.models import ConnectorTestScenario
from airbyte_cdk.test.standard_tests import DiscoveredCatalogWarning, docker_base
from airbyte_cdk.test.standard_tests._catalog_checks import (
    find_catalog_problems,
    format_catalog_problems,
)
from airbyte_cdk.test.standard_tests._read_assertions import assert_read_records
from airbyte_cdk.test.standard_tests.docker_base import DockerConnectorTestSuite

# The origin the committed configs name: `source-constant-contact sandbox --port 8718`.
FIXTURE_ORIGIN = "http://127.0.0.1:8718"
CONTAINER_CATALOG = ":/secrets/catalog.json"


@dataclass
class DockerRun:
    """One `docker run` of the suite: its output and, for `read`, the catalog it was given."""

    command: list[str]
    output: EntrypointOutput
    catalog: ConfiguredAirbyteCatalog | None


def record_docker_runs(monkeypatch: pytest.MonkeyPatch) -> list[DockerRun]:
    """Collect the suite's `docker run`s while the calling test runs.

    The suite's tests keep their output to themselves; this wraps the function they run the
    image with, so the assertions below see exactly what the suite's own run printed, without
    a second run. The catalog is read while its temporary file still exists.
    """
    runs: list[DockerRun] = []
    run_in_docker = docker_base.run_docker_airbyte_command

    def recording(cmd: list[str], *, raise_if_errors: bool = False) -> EntrypointOutput:
        catalog = None
        for arg in cmd:
            if arg.endswith(CONTAINER_CATALOG):
                host_path = Path(arg.removesuffix(CONTAINER_CATALOG))
                catalog = ConfiguredAirbyteCatalogSerializer.load(json.loads(host_path.read_text()))
        output = run_in_docker(cmd, raise_if_errors=raise_if_errors)
        runs.append(DockerRun(cmd, output, catalog))
        return output

    monkeypatch.setattr(docker_base, "run_docker_airbyte_command", recording)
    return runs


def pointed_at_sandbox(config: dict) -> dict:
    """`config` with the URLs and pace of the sandbox in CC_STANDARD_TESTS_SANDBOX/_RPS."""
    origin = os.environ.get("CC_STANDARD_TESTS_SANDBOX")
    rps = os.environ.get("CC_STANDARD_TESTS_RPS")
    config = dict(config)
    if origin:
        for key in ("api_base_url", "token_url"):
            if str(config.get(key, "")).startswith(FIXTURE_ORIGIN + "/"):
                config[key] = origin + config[key].removeprefix(FIXTURE_ORIGIN)
    if rps and "requests_per_second" in config:
        config["requests_per_second"] = int(rps)
    return config


class TestSourceConstantContactImage(DockerConnectorTestSuite):
    """The image under --connector-image, against the sandbox."""

    @classmethod
    def get_scenarios(cls) -> list[ConnectorTestScenario]:
        root = cls.get_connector_root_dir()
        return [
            scenario.model_copy(
                update={
                    "config_dict": pointed_at_sandbox(
                        scenario.get_config_dict(connector_root=root, empty_if_missing=False)
                    )
                }
            )
            for scenario in super().get_scenarios()
        ]

    def test_docker_image_build_and_discover(
        self,
        scenario: ConnectorTestScenario,
        connector_image_override: str | None,
        connector_base_image_override: str | None,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The suite's image `discover`, then SourceTestSuiteBase.test_discover's catalog checks."""
        runs = record_docker_runs(monkeypatch)
        super().test_docker_image_build_and_discover(
            scenario, connector_image_override, connector_base_image_override
        )
        catalogs = [m.catalog for m in runs[-1].output.get_message_by_types([Type.CATALOG])]
        assert len(catalogs) == 1, f"Expected exactly one CATALOG message. Got {len(catalogs)}."
        problems = find_catalog_problems(catalogs[0])
        advisory = {check: found for check, found in problems.items() if not check.enforced}
        if advisory:
            warnings.warn(
                f"The discovered catalog has problems:\n{format_catalog_problems(advisory)}",
                category=DiscoveredCatalogWarning,
                stacklevel=1,
            )
        enforced = {check: found for check, found in problems.items() if check.enforced}
        assert not enforced, (
            f"The discovered catalog has problems:\n{format_catalog_problems(enforced)}"
        )

    def test_docker_image_build_and_read(
        self,
        scenario: ConnectorTestScenario,
        connector_image_override: str | None,
        connector_base_image_override: str | None,
        read_from_streams,
        read_scenarios,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The suite's image `read`, then SourceTestSuiteBase.test_basic_read's record checks."""
        runs = record_docker_runs(monkeypatch)
        super().test_docker_image_build_and_read(
            scenario,
            connector_image_override,
            connector_base_image_override,
            read_from_streams,
            read_scenarios,
        )
        read = runs[-1]
        assert read.catalog is not None, f"the last docker run was not a read: {read.command}"
        assert_read_records(
            records=read.output.records_iterator,
            configured_catalog=read.catalog,
            require_records_per_stream=scenario.is_basic_read_config,
            validate_schema=scenario.validate_schema,
        )
