"""``aioimds completion bash|zsh``: a shell completion script made from the parser itself.

Chosen over an argcomplete hook: nothing to install, no Python started on each Tab, and the
script cannot drift from the options since it is generated from them. Use it with
``eval "$(aioimds completion bash)"`` in ``~/.bashrc``, or ``eval "$(aioimds completion zsh)"``
in ``~/.zshrc`` (zsh runs the same function through ``bashcompinit``). It completes
sub-commands, options, option choices (``--format``, ``--endpoint-mode``, ``--tokens``),
``watch`` kinds and file names where a file is expected.
"""

from __future__ import annotations

import argparse
import shlex

from .parser import subcommands

__all__ = ["script"]

_FILE_OPTIONS = {"--output", "-o", "--snapshot", "--sign-identity"}
_FILE_POSITIONALS = {"diff"}


def _options(parser: argparse.ArgumentParser) -> tuple[list[str], dict[str, list[str]],
                                                         list[str], list[str]]:
    """(option strings, choices of options, options taking a value, positional choices)."""
    flags: list[str] = []
    choices: dict[str, list[str]] = {}
    valued: list[str] = []
    positional: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if not action.option_strings:
            positional += [str(c) for c in action.choices or ()]
            continue
        flags += action.option_strings
        if action.nargs == 0:
            continue
        for flag in action.option_strings:
            if action.choices:
                choices[flag] = [str(c) for c in action.choices]
            else:
                valued.append(flag)
    return flags, choices, valued, positional


def _words(items: list[str]) -> str:
    return shlex.quote(" ".join(items))


def _bash(parser: argparse.ArgumentParser) -> str:
    commands = subcommands(parser)
    top_flags, top_choices, top_valued, _ = _options(parser)
    value_cases: list[str] = []
    body_cases: list[str] = []
    scopes: list[tuple[str, list[str], dict[str, list[str]], list[str], list[str]]] = [
        ("", top_flags, top_choices, top_valued, [])]
    scopes += [(name, *_options(sub)) for name, sub in commands.items()]
    for name, flags, choices, valued, positional in scopes:
        for flag, values in choices.items():
            value_cases.append(f"        {shlex.quote(name + ':' + flag)}) "
                               f"COMPREPLY=($(compgen -W {_words(values)} -- \"$cur\")); "
                               "return;;")
        for flag in valued:
            action = "compgen -f -- \"$cur\"" if flag in _FILE_OPTIONS else "true"
            value_cases.append(f"        {shlex.quote(name + ':' + flag)}) "
                               f"COMPREPLY=($({action})); return;;")
        words = flags + (list(commands) if name == "" else positional)
        rest = "compgen -f -- \"$cur\"" if name in _FILE_POSITIONALS else \
            f"compgen -W {_words(words)} -- \"$cur\""
        label = shlex.quote(name) if name else '""'
        body_cases.append(
            f"        {label}) if [[ $cur == -* ]]; then "
            f"COMPREPLY=($(compgen -W {_words(flags)} -- \"$cur\")); "
            f"else COMPREPLY=($({rest})); fi;;")
    names = "|".join(commands)
    return "\n".join([
        "# aioimds completion for bash; eval \"$(aioimds completion bash)\"",
        "_aioimds() {",
        "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"",
        "    local cmd=\"\" i",
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        f"        case \"${{COMP_WORDS[i]}}\" in {names}) cmd=\"${{COMP_WORDS[i]}}\"; break;; "
        "esac",
        "    done",
        "    case \"$cmd:$prev\" in",
        *value_cases,
        "    esac",
        "    case \"$cmd\" in",
        *body_cases,
        "    esac",
        "}",
        "complete -F _aioimds aioimds",
        "",
    ])


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` (``bash`` or ``zsh``) of ``parser``."""
    bash = _bash(parser)
    if shell == "zsh":
        return ("# aioimds completion for zsh; eval \"$(aioimds completion zsh)\"\n"
                "autoload -U +X bashcompinit && bashcompinit\n" + bash)
    return bash
