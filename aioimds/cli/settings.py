"""The effective configuration of one command: the endpoint to use, and where each value of it
came from (an option, a variable, a profile in a file, or the default)."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from ..config import IMDSConfig, setting_sources

__all__ = ["OPTION_NAMES", "Settings", "open_settings"]

OPTION_NAMES = {
    "endpoint": "--endpoint",
    "endpoint_mode": "--endpoint-mode",
    "timeout": "--timeout",
    "attempts": "--attempts",
}
"""The global option of each setting (the others are read from outside only)."""


@dataclass(frozen=True)
class Settings:
    """The configuration a command runs with.

    Attributes:
        config: the client's settings.
        sources: setting name -> where its value came from, in words
            (``"option --endpoint"``, ``"variable AWS_METADATA_SERVICE_TIMEOUT"``,
            ``"ec2_metadata_service_endpoint in [profile dev] of /home/me/.aws/config"``,
            ``"default"``).
        emulator: whether the endpoint is the embedded emulator (``--emulator``).
    """

    config: IMDSConfig
    sources: dict[str, str]
    emulator: bool

    def endpoint_reason(self) -> str:
        """Why this endpoint, in words: its source, or the endpoint mode's when defaulted."""
        source = self.sources["endpoint"]
        if source != "default":
            return source
        mode_source = self.sources["endpoint_mode"]
        return f"endpoint mode {self.config.endpoint_mode}, {mode_source}"


def _overrides(args: argparse.Namespace, endpoint: str | None) -> dict[str, object]:
    return {
        "endpoint": endpoint,
        "endpoint_mode": getattr(args, "endpoint_mode", None),
        "timeout": getattr(args, "timeout", None),
        "attempts": getattr(args, "attempts", None),
        # the embedded emulator is local: AWS_EC2_METADATA_DISABLED is about the real IMDS
        "disabled": False if getattr(args, "emulator", False) else None,
    }


def settings_for(args: argparse.Namespace, endpoint: str | None = None,
                 environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``args`` (global options) over the environment and config file;
    ``endpoint`` replaces ``--endpoint`` (the emulator's URL).

    Raises: :class:`~aioimds.IMDSConfigError` naming a bad value.
    """
    env = os.environ if environ is None else environ
    emulator = bool(getattr(args, "emulator", False))
    overrides = _overrides(args, endpoint if endpoint is not None
                           else getattr(args, "endpoint", None))
    # --emulator reads no config file: a broken one cannot block the local emulator
    profile, read_file = getattr(args, "profile", None), not emulator
    config = IMDSConfig.from_environment(env, profile=profile, profile_origin="--profile",
                                         config_file=read_file, **overrides)
    sources = {}
    for name, source in setting_sources(env, profile=profile, profile_origin="--profile",
                                        config_file=read_file, **overrides).items():
        if source == "argument":
            source = "option --emulator" if emulator and name in ("endpoint", "disabled") \
                else f"option {OPTION_NAMES.get(name, name)}"
        sources[name] = source
    return Settings(config, sources, emulator)


@contextlib.asynccontextmanager
async def open_settings(args: argparse.Namespace,
                        environ: Mapping[str, str] | None = None) -> AsyncIterator[Settings]:
    """The settings of ``args``; with ``--emulator`` the embedded emulator runs meanwhile."""
    if not getattr(args, "emulator", False):
        yield settings_for(args, environ=environ)
        return
    from ..emulator import Emulator

    async with Emulator() as emu:
        yield settings_for(args, emu.url, environ)
