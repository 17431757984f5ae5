"""Conformance: real third-party IMDS clients read the emulator (the ``conformance`` extra)."""
