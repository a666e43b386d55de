"""Reading a Dockerfile as Docker does: its instructions, the ARGs before the first FROM,
and its stages (base, name, what each copies from which). The checks and the grader's
audit read Dockerfiles through this one parser."""

from __future__ import annotations

import io
import re
import shlex
from typing import Any

from dockerfile_parse import DockerfileParser


def instructions(text: str) -> list[dict[str, Any]]:
    return list(DockerfileParser(fileobj=io.BytesIO(text.encode())).structure)


def dockerfile_args(text: str) -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults ("" without one)."""
    found: dict[str, str] = {}
    for instruction in instructions(text):
        if instruction["instruction"] == "FROM":
            break
        if instruction["instruction"] == "ARG":
            try:
                words = shlex.split(instruction["value"])
            except ValueError:  # an unbalanced quote: take the words as they are
                words = instruction["value"].split()
            for word in words:
                key, _, default = word.partition("=")
                found[key] = default
    return found


def _substitute(value: str, variables: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        fallback = match.group(2)
        return variables.get(name) or (fallback[2:] if fallback else "")

    return re.sub(r"\$\{(\w+)(:-[^}]*)?\}|\$(\w+)", one, value)


def dockerfile_stages(text: str) -> list[dict[str, Any]]:
    """The Dockerfile's stages: base (global ARG defaults substituted), name, the stages
    its COPY --from lines name, its last USER, and its last CMD and ENTRYPOINT with
    whether each is in exec (JSON) form."""
    variables = dockerfile_args(text)
    stages: list[dict[str, Any]] = []
    for instruction in instructions(text):
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "FROM":
            words = value.split()
            options = [w for w in words if w.startswith("--")]
            words = [w for w in words if not w.startswith("--")]
            name = words[2].lower() if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(
                {
                    "base": _substitute(words[0], variables) if words else "",
                    "name": name,
                    "copies_from": [],
                    "platform": options,
                }
            )
        elif kind in ("COPY", "ADD") and stages:
            found = re.findall(r"--from=(\S+)", value)
            stages[-1]["copies_from"] += [source.lower() for source in found]
        elif kind == "RUN" and stages:  # RUN --mount=type=bind,from=builder,...
            found = re.findall(r"--mount=\S*?\bfrom=([^,\s]+)", value)
            stages[-1]["copies_from"] += [source.lower() for source in found]
        elif kind == "USER" and stages:
            stages[-1]["user"] = value.strip()
        elif kind in ("CMD", "ENTRYPOINT") and stages:
            stages[-1][kind.lower()] = {
                "value": value.strip(),
                "exec_form": value.strip().startswith("["),
            }
    return stages


def stage_index(stages: list[dict[str, Any]], reference: str, before: int) -> int | None:
    """Which earlier stage ``reference`` (a FROM or COPY --from value) names, if any."""
    for index in range(before):
        if reference.lower() == stages[index]["name"] or reference == str(index):
            return index
    return None
