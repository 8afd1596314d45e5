"""README is the front door: every command and flag its command list documents exists.

A documented flag that does not exist is a bug (the standards say so); this reads README's
fenced `allocator ...` lines and asks Click, which parses the real command line, for each
command and each `--flag` written on its line.
"""

from __future__ import annotations

import re

import click

from tests.conftest import ROOT


def _documented() -> list[tuple[list[str], list[str]]]:
    """(command path, flags) of each `allocator ...` line in README's code blocks; a word
    with '|' (`list|show|prune`) is one line per alternative."""
    found: list[tuple[list[str], list[str]]] = []
    inside = False
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside or not line.startswith("allocator "):
            continue
        text = line.split("  #", 1)[0]
        words = text.split()[1:]
        flags = sorted({m for m in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text)})
        path: list[list[str]] = [[]]
        for word in words:
            if word.startswith(("-", "[")) or not re.fullmatch(r"[a-z][a-z|-]*", word):
                break
            path = [[*p, alt] for p in path for alt in word.split("|")]
        found += [(p, flags) for p in path]
    return found


def _command(path: list[str]) -> click.Command:
    from allocator.cli import _register, main

    _register()
    command: click.Command = main
    for i, name in enumerate(path):
        if not isinstance(command, click.Group):
            return command  # the rest are arguments (`convert gap|cap|mknap FILE`)
        if name not in command.commands:
            said = " ".join(path[: i + 1])
            raise AssertionError(f"README documents `allocator {said}`: no such command")
        command = command.commands[name]
    return command


def test_every_documented_command_and_flag_exists() -> None:
    documented = _documented()
    assert len(documented) >= 20  # the list was read (a README edit must not empty it)
    missing = []
    for path, flags in documented:
        command = _command(path)
        known = {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}
        missing += [f"allocator {' '.join(path)} {flag}" for flag in flags if flag not in known]
    assert not missing, f"README documents flags that do not exist: {missing}"
