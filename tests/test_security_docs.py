"""The README's Errors table and SECURITY.md cannot drift from the code they describe."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import aioimds

ROOT = Path(__file__).resolve().parents[1]


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_the_readme_errors_table_lists_every_exported_error() -> None:
    errors = section((ROOT / "README.md").read_text(encoding="utf-8"), "Errors")
    exported = [name for name in aioimds.__all__
                if isinstance(getattr(aioimds, name), type)
                and issubclass(getattr(aioimds, name), aioimds.IMDSError)]
    rows = re.findall(r"^\| `(\w+)`", errors, re.M)
    assert sorted(set(exported) - {"IMDSError"}) == sorted(rows)


def test_every_constant_and_module_security_md_names_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    modules = {m.name for m in pkgutil.walk_packages(aioimds.__path__, "aioimds.")
               if not m.name.endswith("__main__")}
    for path in re.findall(r"`aioimds/([\w/]+)\.py`", text):
        assert "aioimds." + path.replace("/", ".") in modules, path
    names: set[str] = set()
    for module in modules:
        try:
            names |= set(vars(importlib.import_module(module)))
        except ModuleNotFoundError as exc:  # an SDK integration whose extra is not installed
            assert exc.name is not None and not exc.name.startswith("aioimds"), module
    for constant in re.findall(r"`([A-Z][A-Z0-9_]{3,})`", text):
        if constant.startswith("AWS_") or constant.endswith("_PROXY"):
            continue  # environment variables, not constants
        assert constant in names, constant
