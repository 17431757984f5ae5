"""config.setting_sources: where each setting comes from, by the precedence of from_environment."""

from __future__ import annotations

from pathlib import Path

from aioimds.config import setting_sources


def test_each_source_by_precedence(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("[profile dev]\nmetadata_service_timeout = 3\n"
                      "ec2_metadata_service_endpoint = http://127.0.0.1:2\n")
    env = {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "dev",
           "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "4", "AWS_EC2_METADATA_SERVICE_ENDPOINT": " "}
    assert setting_sources(env, endpoint_mode="IPv6") == {
        "disabled": "default",
        "endpoint": f"ec2_metadata_service_endpoint in [profile dev] of {config}",
        "endpoint_mode": "argument",
        "v1_disabled": "default",
        "timeout": f"metadata_service_timeout in [profile dev] of {config}",
        "attempts": "variable AWS_METADATA_SERVICE_NUM_ATTEMPTS",
    }


def test_a_none_argument_does_not_count() -> None:
    assert setting_sources({"AWS_CONFIG_FILE": "/nonexistent"}, timeout=None)["timeout"] == (
        "default")
