"""The commands the instructor guide, the README and the documentation site tell people to
type exist as written: each `workshop ...` names a real command and options it takes, and
each `--tags` of site.yml names a stage. The site builds with no warning (MkDocs
--strict), and headless Chromium shows its pages: the navigation and the command
reference generated from the `workshop` command."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from bs4 import BeautifulSoup

from tests.conftest import CHROMIUM
from workshop.cli import app

REPO = Path(__file__).resolve().parents[1]
DOCS = [
    "INSTRUCTOR.md",
    "README.md",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md")),
]


def commands(text: str, program: str) -> list[str]:
    """Every inline-code span or code line that starts with ``program``."""
    spans = re.findall(r"`([^`\n]+)`", text)
    lines = [line.split("#")[0] for line in text.splitlines()]
    return [c.strip() for c in spans + lines if c.strip().startswith(program + " ")]


def resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The command the words name (Typer's own click types: groups have ``commands``)."""
    command = typer.main.get_command(app)
    rest = words
    root = {opt for param in command.params for opt in param.opts}  # e.g. --verbose
    while rest and rest[0] in root:
        rest = rest[1:]
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


@pytest.mark.parametrize("doc", DOCS)
def test_every_workshop_command_in_the_docs_exists_with_its_options(doc):
    text = (REPO / doc).read_text()
    found = commands(text, "workshop")
    assert found or doc.startswith("docs/"), f"{doc} shows no workshop command"
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


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    built = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "mkdocs"),
            "build",
            "--strict",
            "--site-dir",
            str(built),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr
    return built


def shown(page: Path, tmp_path: Path) -> BeautifulSoup:
    """The page's DOM once headless Chromium has rendered it."""
    dumped = subprocess.run(
        [*CHROMIUM, f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return BeautifulSoup(dumped.stdout, "html.parser")


def test_the_site_shows_every_page_in_its_navigation(site, tmp_path):
    home = shown(site / "index.html", tmp_path)
    titles = {link.get_text(" ", strip=True) for link in home.select("nav.md-nav--primary a")}
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    assert {next(iter(entry)) for entry in nav} <= titles


def test_the_command_reference_is_the_commands_own(site, tmp_path):
    page = shown(site / "reference" / "cli" / "index.html", tmp_path)
    headings = {h.get_text(" ", strip=True).rstrip("¶").strip() for h in page.select("h3")}
    command = typer.main.get_command(app)
    leaves = {
        " ".join(["workshop", name, *([sub] if sub else [])])
        for name, found in command.commands.items()  # type: ignore[attr-defined]
        for sub in (sorted(found.commands) if hasattr(found, "commands") else [None])
    }
    assert leaves == headings
    up = next(
        h for h in page.select("h3") if h.get_text(strip=True).startswith("workshop cloud up")
    )
    options = up.find_next("table").get_text(" ", strip=True)
    assert "--provider" in options
    assert "--dry-run" in options
