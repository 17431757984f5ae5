"""The cross-SDK IMDS configuration table of the AWS SDK for Rust (tests/conformance_data/,
provenance in its NOTICE.md), one test per case: environment variables, config files and
explicit arguments in, the token URL the client PUTs to (or a configuration error) out."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from aioimds import IMDSConfig, IMDSConfigError
from aioimds.wire import TOKEN_PATH

TABLE = Path(__file__).resolve().parent / "conformance_data" / "imds-tests.json"
CASES: list[dict[str, Any]] = json.loads(TABLE.read_text(encoding="utf-8"))["tests"]


def test_the_table_is_the_whole_upstream_table() -> None:
    assert len(CASES) == 13
    assert {"docs", "env", "fs", "result"} <= set().union(*CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["docs"].replace(" ", "-") for c in CASES])
def test_imds_config_case(tmp_path: Path, case: dict[str, Any]) -> None:
    for name, text in case["fs"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    env = {k: str(tmp_path / v) if k == "AWS_CONFIG_FILE" else v for k, v in case["env"].items()}
    env.setdefault("AWS_CONFIG_FILE", str(tmp_path / "no-config-file"))

    def resolve() -> str:
        config = IMDSConfig.from_environment(env, endpoint=case.get("endpoint_override"),
                                             endpoint_mode=case.get("mode_override"))
        return config.base_url + TOKEN_PATH

    result = case["result"]
    if "Ok" in result:
        assert resolve() == result["Ok"]
        return
    with pytest.raises(IMDSConfigError) as info:
        resolve()
    # the kind, not the words; where the SDK names the bad value, so does aioimds
    named = re.search(r"`([^`]+)`", result["Err"])
    if named:
        assert repr(named.group(1)) in str(info.value)
