"""MkDocs hook: the command reference page, generated from the ``workshop`` Typer app at
build time (every command, its help and its options), so it cannot drift from the code."""

from __future__ import annotations

import html
from typing import Any

import typer

MARKER = "<!-- cli-reference -->"
PAGE = "reference/cli.md"


def _cell(text: str) -> str:
    # Help text says ~/labs/<lab>/: escaped, or Markdown would take <lab> for a tag.
    return html.escape(" ".join(text.split())).replace("|", "\\|")


def _option_rows(command: Any) -> list[str]:
    rows = []
    for param in command.params:
        if param.name in ("install_completion", "show_completion", "help"):
            continue
        names = ", ".join(f"`{name}`" for name in [*param.opts, *param.secondary_opts])
        if param.param_type_name == "argument":
            names = f"`{param.name.upper() if param.name else ''}` (argument)"
        default = param.default
        shown = "" if default in (None, False, (), []) or callable(default) else f"`{default}`"
        help_text = getattr(param, "help", None) or ""
        rows.append(f"| {names} | {_cell(help_text)} | {shown} |")
    return rows


def _is_group(command: Any) -> bool:
    # Typer's groups are its own click-compatible class: look for subcommands instead.
    return hasattr(command, "commands")


def _document(command: Any, path: list[str]) -> list[str]:
    if _is_group(command):
        lines = []
        if path:
            lines += [f"## {' '.join(path)}", "", _cell(command.help or ""), ""]
        for name in sorted(command.commands):
            lines += _document(command.commands[name], [*path, name])
        return lines
    lines = [f"### {' '.join(path)}", "", _cell(command.help or ""), ""]
    rows = _option_rows(command)
    if rows:
        lines += ["| option | what | default |", "| --- | --- | --- |", *rows, ""]
    return lines


def reference() -> str:
    from workshop.cli import app

    root = typer.main.get_command(app)
    commands: dict[str, Any] = root.commands  # type: ignore[attr-defined]
    top = [name for name, command in commands.items() if not _is_group(command)]
    lines = ["## workshop", "", _cell(root.help or ""), ""]
    rows = _option_rows(root)
    if rows:
        lines += ["| option | what | default |", "| --- | --- | --- |", *rows, ""]
    for name in sorted(top):
        lines += _document(commands[name], ["workshop", name])
    for name, group in sorted(commands.items()):
        if _is_group(group):
            lines += _document(group, ["workshop", name])
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri == PAGE:
        return markdown.replace(MARKER, reference())
    return markdown
