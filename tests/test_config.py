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


def test_a_profile_found_nowhere_is_a_clear_config_error(tmp_path: Path) -> None:
    """Issue 11: botocore raises ProfileNotFound; an ignored AWS_PROFILE hid typos."""
    path = write_config(tmp_path, "[default]\nmetadata_service_timeout = 2\n")
    env = {"AWS_CONFIG_FILE": path, "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_PROFILE": "nope"}
    with pytest.raises(IMDSConfigError, match=r"profile 'nope' \(from AWS_PROFILE\) is not in"):
        IMDSConfig.from_environment(env)
    with pytest.raises(IMDSConfigError,
                       match=r"profile 'ci' \(from profile=\).*check the name given to profile=$"):
        IMDSConfig.from_environment(env, profile="ci")


def test_a_profile_only_in_the_credentials_file_gives_defaults(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[default]\nmetadata_service_timeout = 2\n")
    creds = tmp_path / "credentials"
    creds.write_text("[keys-only]\naws_access_key_id = AKIDEXAMPLE\n")
    c = IMDSConfig.from_environment({"AWS_CONFIG_FILE": path, "AWS_PROFILE": "keys-only",
                                     "AWS_SHARED_CREDENTIALS_FILE": str(creds)})
    assert c.timeout == 1.0


def test_profile_argument_wins_over_aws_profile(tmp_path: Path) -> None:
    path = write_config(tmp_path, "[profile a]\nmetadata_service_timeout = 2\n"
                        "[profile b]\nmetadata_service_timeout = 3\n")
    env = {"AWS_CONFIG_FILE": path, "AWS_PROFILE": "a"}
    assert IMDSConfig.from_environment(env).timeout == 2.0
    assert IMDSConfig.from_environment(env, profile="b").timeout == 3.0


def test_empty_file_values_are_unset_as_empty_variables_are(tmp_path: Path) -> None:
    """Issue 11: ``ec2_metadata_service_endpoint =`` raised, the empty variable was unset."""
    path = write_config(tmp_path, "[default]\nec2_metadata_service_endpoint =\n"
                        "ec2_metadata_service_endpoint_mode =\nmetadata_service_timeout = \n"
                        "ec2_metadata_v1_disabled=\n")
    assert IMDSConfig.from_environment({"AWS_CONFIG_FILE": path}) == IMDSConfig()


def test_config_file_false_reads_no_file_at_all(tmp_path: Path) -> None:
    path = write_config(tmp_path, "not a config file\n[[[\n")
    env = {"AWS_CONFIG_FILE": path, "AWS_PROFILE": "gone"}
    with pytest.raises(IMDSConfigError):
        IMDSConfig.from_environment(env)
    assert IMDSConfig.from_environment(env, config_file=False) == IMDSConfig()


@pytest.mark.parametrize(
    ("text", "line"),
    [("no section header\n", 1), ("[default]\nfoo\n", 2),
     ("[default]\na = 1\na = 2\n", 3), ("[default]\n[default]\n", 2)],
    ids=["no-section", "no-equals", "duplicate-key", "duplicate-section"])
def test_a_malformed_config_file_is_one_line_naming_the_file_and_line(
        tmp_path: Path, text: str, line: int) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(IMDSConfigError) as info:
        IMDSConfig.from_environment({"AWS_CONFIG_FILE": path})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"malformed AWS config file {path}: line {line}: ")


@pytest.mark.parametrize("raw", ["true", "TRUE", "tRuE", " true "])
def test_aws_ec2_metadata_disabled_true_in_any_case_disables(tmp_path: Path, raw: str) -> None:
    assert IMDSConfig.from_environment(env_with(tmp_path, AWS_EC2_METADATA_DISABLED=raw)).disabled


@pytest.mark.parametrize("raw", ["false", "0", "1", "yes", "blah", "yes please"])
def test_aws_ec2_metadata_disabled_anything_else_leaves_imds_enabled(
        tmp_path: Path, raw: str) -> None:
    """As botocore (``.lower() == 'true'``) and the Go SDK's "unknown environment value"."""
    env = env_with(tmp_path, AWS_EC2_METADATA_DISABLED=raw)
    assert not IMDSConfig.from_environment(env).disabled


@pytest.mark.parametrize(
    "kwargs",
    [{"disabled": "false"}, {"disabled": 1}, {"v1_disabled": "foo"}, {"v1_disabled": None},
     {"timeout": True}, {"timeout": "1"}, {"attempts": 2.0}, {"endpoint_mode": 4},
     {"endpoint": 123}, {"deadline": "5"}, {"token_ttl": "60"}],
    ids=lambda v: str(v))
def test_fields_are_type_checked(kwargs: dict[str, object]) -> None:
    """Issue 11: ``IMDSConfig(disabled="false")`` disabled the client (a truthy string)."""
    with pytest.raises(IMDSConfigError):
        IMDSConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["ipv6", "IPV6", "IPv6", "iPv6"])
def test_an_explicit_endpoint_mode_is_case_insensitive(mode: str) -> None:
    c = IMDSConfig(endpoint_mode=mode)  # type: ignore[arg-type]
    assert c.endpoint_mode == "IPv6" and c.base_url == "http://[fd00:ec2::254]"


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
    with pytest.raises(IMDSConfigError, match=r"malformed AWS config file .*: line 1: "):
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
