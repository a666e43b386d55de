"""SSH sessions to student VMs through Fabric, with strict host-key checking."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Config, Connection

CONNECT_TIMEOUT = 5


@dataclass(frozen=True)
class SshTarget:
    """How to reach one host: address, login, private key and the known_hosts to trust."""

    host: str
    user: str
    key_file: Path | None  # None: the SSH agent and ~/.ssh keys
    known_hosts: Path
    port: int = 22


@dataclass(frozen=True)
class SystemdProbe:
    """What one SSH probe of a VM saw."""

    ssh_ok: bool
    systemd: str  # "running", "degraded", "starting", ... or the SSH error


def connect(target: SshTarget) -> Connection:
    """A Fabric connection that refuses host keys missing from ``target.known_hosts``."""
    connection = Connection(
        target.host,
        user=target.user,
        port=target.port,
        connect_timeout=CONNECT_TIMEOUT,
        # Never forward our stdin: the kit runs unattended (CI, cron, pytest).
        config=Config(overrides={"run": {"in_stream": False}}),
        connect_kwargs=(
            {"key_filename": str(target.key_file), "look_for_keys": False, "allow_agent": False}
            if target.key_file
            else {}
        ),
    )
    connection.client.load_host_keys(str(target.known_hosts))
    connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return connection


def probe_systemd(target: SshTarget, *, wait_seconds: float = 0) -> SystemdProbe:
    """Log in and ask systemd for the system state, retrying SSH for ``wait_seconds``.

    With a wait, ``systemctl is-system-running --wait`` blocks until boot has finished,
    so a VM that answers "starting" is given the rest of the time to settle.
    """
    deadline = time.monotonic() + wait_seconds
    error = "not tried"
    while True:
        try:
            with connect(target) as connection:
                command = "systemctl is-system-running"
                if wait_seconds:
                    remaining = max(1, int(deadline - time.monotonic()))
                    command = f"timeout {remaining} {command} --wait"
                result = connection.run(command, hide=True, warn=True)
                return SystemdProbe(ssh_ok=True, systemd=result.stdout.strip() or "unknown")
        except (OSError, paramiko.SSHException) as exc:
            error = f"ssh: {exc}".splitlines()[0][:120]
        if time.monotonic() >= deadline:
            return SystemdProbe(ssh_ok=False, systemd=error)
        time.sleep(1)


def banner_answers(host: str, wait_seconds: float, *, port: int = 22) -> bool:
    """Whether an SSH server at ``host`` sends its banner ("SSH-2.0-...") within
    ``wait_seconds`` (a booting cloud VM refuses, then answers): before any host key is
    known, so nothing is trusted by it."""
    deadline = time.monotonic() + wait_seconds
    while True:
        # Never past the caller's deadline: a silent address costs what it allows.
        budget = max(0.1, min(CONNECT_TIMEOUT, deadline - time.monotonic()))
        try:
            with socket.create_connection((host, port), timeout=budget) as sock:
                sock.settimeout(budget)
                if sock.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
