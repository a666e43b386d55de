"""The commands the instructor guide and the README tell people to type exist as written:
each `workshop ...` names a real command and options it takes, and each `--tags` of
site.yml names a stage."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from workshop.cli import app

REPO = Path(__file__).resolve().parents[1]
DOCS = ["INSTRUCTOR.md", "README.md"]


def commands(text: str, program: str) -> list[str]:
    """Every inline-code span or code line that starts with ``program``."""
    spans = re.findall(r"`([^`\n]+)`", text)
    lines = [line.split("#")[0] for line in text.splitlines()]
    return [c.strip() for c in spans + lines if c.strip().startswith(program + " ")]


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The command the words name (Typer's own click types: groups have ``commands``)."""
    command = typer.main.get_command(app)
    rest = words
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


@pytest.mark.parametrize("doc", DOCS)
def test_every_workshop_command_in_the_docs_exists_with_its_options(doc):
    text = (REPO / doc).read_text()
    found = commands(text, "workshop")
    assert found, f"{doc} shows no workshop command"
    problems = []
    for line in found:
        words = shlex.split(line.replace("|", " ").replace("[", " ").replace("]", " "))[1:]
        command, rest = resolve(words)
        if hasattr(command, "commands"):
            # A group named in prose: `workshop quiz`, `workshop registries create/delete`.
            named = rest[0].split("/") if rest else []
            if len(rest) > 1 or any(name not in command.commands for name in named):
                problems.append(f"{line}: no such command")
            continue
        known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        problems += [
            f"{line}: {word} is not an option of it"
            for word in rest
            if word.startswith("--") and word.split("=")[0] not in known
        ]
    assert problems == []


@pytest.mark.parametrize("doc", DOCS)
def test_every_site_yml_tag_in_the_docs_is_a_stage(doc):
    stages = {
        tag for play in yaml.safe_load((REPO / "site.yml").read_text()) for tag in play["tags"]
    }
    used = set()
    for line in commands((REPO / doc).read_text(), "ansible-playbook"):
        words = shlex.split(line)
        for flag in ("--tags", "-t"):
            if flag in words:
                used |= set(words[words.index(flag) + 1].split(","))
    assert used - stages == set()
