"""The standard tests' options (--connector-image, --read-from-streams, --read-scenarios)."""

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]
