"""IMDSConfig: every configuration name, every precedence rule, every bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from aioimds import IMDSConfig, IMDSConfigError
from aioimds import config as cfgmod


def env_with(tmp_path: Path, **env: str) -> dict[str, str]:
    """An environment whose config file is a (missing) file in tmp_path unless given."""
    base = {"AWS_CONFIG_FILE": str(tmp_path / "missing-config")}
    base.update(env)
    return base


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config"
    path.write_text(text)
    return str(path)


def test_defaults_are_the_documented_constants(tmp_path: Path) -> None:
    c = IMDSConfig.from_environment(env_with(tmp_path))
    assert (cfgmod.DEFAULT_TIMEOUT, cfgmod.DEFAULT_ATTEMPTS, cfgmod.DEFAULT_TOKEN_TTL,
            cfgmod.DEFAULT_MAX_BODY) == (1.0, 3, 21600, 1 << 20)
    assert c == IMDSConfig()
    assert c.base_url == "http://169.254.169.254"
    assert (c.disabled, c.v1_disabled, c.timeout, c.attempts, c.token_ttl) == (
        False, False, 1.0, 3, 21600)


@pytest.mark.parametrize(
    ("var", "raw", "field", "value"),
    [
        ("AWS_EC2_METADATA_DISABLED", "true", "disabled", True),
        ("AWS_EC2_METADATA_DISABLED", "FALSE", "disabled", False),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1338/", "endpoint",
         "http://127.0.0.1:1338"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6", "endpoint_mode", "IPv6"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ipv4", "endpoint_mode", "IPv4"),
        ("AWS_EC2_METADATA_V1_DISABLED", "true", "v1_disabled", True),
        ("AWS_METADATA_SERVICE_TIMEOUT", "2.5", "timeout", 2.5),
        ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "5", "attempts", 5),
    ],
    ids=lambda v: str(v),
)
def test_each_environment_variable(tmp_path: Path, var: str, raw: str, field: str,
                                   value: object) -> None:
    c = IMDSConfig.from_environment(env_with(tmp_path, **{var: raw}))
    assert getattr(c, field) == value


@pytest.mark.parametrize(
    ("key", "raw", "field", "value"),
    [
        ("ec2_metadata_service_endpoint", "http://127.0.0.1:9", "endpoint", "http://127.0.0.1:9"),
        ("ec2_metadata_service_endpoint_mode", "IPv6", "endpoint_mode", "IPv6"),
        ("ec2_metadata_v1_disabled", "true", "v1_disabled", True),
        ("metadata_service_timeout", "3", "timeout", 3.0),
        ("metadata_service_num_attempts", "7", "attempts", 7),
    ],
    ids=lambda v: str(v),
)
def test_each_config_file_key(tmp_path: Path, key: str, raw: str, field: str,
                              value: object) -> None:
    path = write_config(tmp_path, f"[default]\n{key} = {raw}\n")
    c = IMDSConfig.from_environment({"AWS_CONFIG_FILE": path})
    assert getattr(c, field) == value


def test_profile_section_from_aws_profile(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nmetadata_service_timeout = 2\n"
                        "[profile ci]\nmetadata_service_timeout = 4\n")
    assert IMDSConfig.from_environment({"AWS_CONFIG_FILE": path}).timeout == 2.0
    c = IMDSConfig.from_environment({"AWS_CONFIG_FILE": path, "AWS_PROFILE": "ci"})
    assert c.timeout == 4.0


def test_missing_profile_section_gives_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nmetadata_service_timeout = 2\n")
    c = IMDSConfig.from_environment({"AWS_CONFIG_FILE": path, "AWS_PROFILE": "nope"})
    assert c.timeout == 1.0


def test_environment_wins_over_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nmetadata_service_num_attempts = 7\n")
    c = IMDSConfig.from_environment(
        {"AWS_CONFIG_FILE": path, "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "2"})
    assert c.attempts == 2


def test_argument_wins_over_environment_and_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nmetadata_service_timeout = 7\n")
    c = IMDSConfig.from_environment(
        {"AWS_CONFIG_FILE": path, "AWS_METADATA_SERVICE_TIMEOUT": "5"}, timeout=0.25)
    assert c.timeout == 0.25


def test_none_argument_does_not_override(tmp_path: Path) -> None:
    c = IMDSConfig.from_environment(
        env_with(tmp_path, AWS_METADATA_SERVICE_TIMEOUT="5"), timeout=None)
    assert c.timeout == 5.0


def test_empty_variable_is_unset(tmp_path: Path) -> None:
    c = IMDSConfig.from_environment(env_with(tmp_path, AWS_METADATA_SERVICE_TIMEOUT=""))
    assert c.timeout == 1.0


def test_ipv6_mode_gives_the_ipv6_endpoint_and_custom_endpoint_wins() -> None:
    assert IMDSConfig(endpoint_mode="IPv6").base_url == "http://[fd00:ec2::254]"
    c = IMDSConfig(endpoint_mode="IPv6", endpoint="http://127.0.0.1:5")
    assert c.base_url == "http://127.0.0.1:5"


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv5"),
        ("AWS_METADATA_SERVICE_TIMEOUT", "abc"),
        ("AWS_METADATA_SERVICE_TIMEOUT", "-1"),
        ("AWS_METADATA_SERVICE_TIMEOUT", "inf"),
        ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "0"),
        ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "two"),
        ("AWS_EC2_METADATA_DISABLED", "yes please"),
        ("AWS_EC2_METADATA_V1_DISABLED", "1"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "169.254.169.254"),
    ],
    ids=lambda v: str(v),
)
def test_bad_environment_value_names_the_variable(tmp_path: Path, var: str, raw: str) -> None:
    with pytest.raises(IMDSConfigError, match=var):
        IMDSConfig.from_environment(env_with(tmp_path, **{var: raw}))


def test_bad_file_value_names_the_key_and_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nmetadata_service_num_attempts = 0\n")
    with pytest.raises(IMDSConfigError, match=r"metadata_service_num_attempts in \[default\]"):
        IMDSConfig.from_environment({"AWS_CONFIG_FILE": path})


def test_unparseable_config_file_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "no section header\n")
    with pytest.raises(IMDSConfigError, match="cannot parse AWS config file"):
        IMDSConfig.from_environment({"AWS_CONFIG_FILE": path})


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"attempts": 0}, {"token_ttl": 21601}, {"token_ttl": 0},
     {"endpoint_mode": "IPv5"}, {"endpoint": "ftp://x"}, {"max_body": 0}, {"deadline": -1}],
    ids=lambda v: str(v),
)
def test_bad_direct_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(IMDSConfigError):
        IMDSConfig(**kwargs)  # type: ignore[arg-type]


def test_unknown_override_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IMDSConfigError, match="unknown settings"):
        IMDSConfig.from_environment(env_with(tmp_path), timeoutt=3)


def test_overall_deadline_default_and_explicit() -> None:
    assert IMDSConfig().deadline_for(3) == 3 * (1.0 + 1.0)
    assert IMDSConfig(timeout=0.5).deadline_for(8) == 8 * 1.5
    assert IMDSConfig(deadline=2.5).deadline_for(8) == 2.5


@pytest.mark.parametrize(
    "endpoint",
    ["http://127.0.0.1:99999", "http://127.0.0.1:abc", "http://[::1", "http://",
     "http://127.0.0.1:1338/latest", "http://127.0.0.1:1338/?a=b", "ftp://127.0.0.1",
     "http://user:pw@127.0.0.1:1338"],
    ids=["port-range", "port-text", "bracket", "no-host", "path", "query", "scheme", "userinfo"],
)
def test_malformed_endpoints_are_config_errors(tmp_path: Path, endpoint: str) -> None:
    with pytest.raises(IMDSConfigError, match="endpoint"):
        IMDSConfig(endpoint=endpoint)
    with pytest.raises(IMDSConfigError, match="AWS_EC2_METADATA_SERVICE_ENDPOINT"):
        IMDSConfig.from_environment(env_with(tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=endpoint))


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:1338", "http://[::1]:1338/", "https://imds.test"],
)
def test_well_formed_endpoints_are_kept(endpoint: str) -> None:
    assert IMDSConfig(endpoint=endpoint).base_url == endpoint.rstrip("/")


def test_argument_wins_even_over_a_bad_environment_value(tmp_path: Path) -> None:
    env = env_with(tmp_path, AWS_METADATA_SERVICE_TIMEOUT="abc",
                   AWS_EC2_METADATA_SERVICE_ENDPOINT="notaurl")
    c = IMDSConfig.from_environment(env, timeout=2.0, endpoint="http://127.0.0.1:5")
    assert (c.timeout, c.base_url) == (2.0, "http://127.0.0.1:5")
