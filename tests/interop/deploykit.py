"""Run the recipes in deploy/ as they are: the nginx site and the systemd unit's command line.

``render_site`` replaces only the names, ports and paths of ``deploy/nginx/edrys-relay.conf``
(each replacement must match exactly once, so the test breaks when the recipe changes shape);
:class:`Nginx` runs it under a generated main configuration in a temporary directory, on free
ports of 127.0.0.1. ``unit_command`` is the systemd unit's ``ExecStart`` with its port and data
directory replaced, for ``tests/server/relayproc.py``'s RelayProcess.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "deploy" / "nginx" / "edrys-relay.conf"
UNIT = REPO / "deploy" / "systemd" / "edrys-relay.service"


def require_tool(name: str, package: str) -> str:
    """A Debian tool the tests run; skips without it, except under CI (scripts/setup installs
    it as root)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        message = f"{name} is not installed (scripts/setup installs it as root: apt {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    assert count == 1, f"{SITE.name}: expected {old!r} once, found it {count} times"
    return text.replace(old, new)


def render_site(
    *, relay_port: int, http_port: int, https_port: int, cert: Path, key: Path, logs: Path
) -> str:
    """The nginx site with this machine's ports, the test certificate and log paths."""
    text = SITE.read_text()
    for old, new in (
        ("server 127.0.0.1:1234;", f"server 127.0.0.1:{relay_port};"),
        ("    listen 80;\n", f"    listen 127.0.0.1:{http_port};\n"),
        ("    listen [::]:80;\n", ""),
        ("    listen 443 ssl;\n", f"    listen 127.0.0.1:{https_port} ssl;\n"),
        ("    listen [::]:443 ssl;\n", ""),
        ("/etc/letsencrypt/live/relay.school.example/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/relay.school.example/privkey.pem", str(key)),
        ("/var/log/nginx/edrys-relay.error.log", str(logs / "site-error.log")),
    ):
        text = _replace_once(text, old, new)
    access = "/var/log/nginx/edrys-relay.access.log"
    assert text.count(access) == 2, "both servers log to the access log"
    return text.replace(access, str(logs / "access.log"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    """Our own nginx master process (and its worker) with the rendered site included."""

    def __init__(self, directory: Path, site: str, https_port: int) -> None:
        self.directory = directory
        self.https_port = https_port
        self.logs = directory
        (directory / "edrys-relay.conf").write_text(site)
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers read our 0700 temp dir
        temp = "\n".join(
            f"    {kind}_temp_path {directory / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (directory / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'error.log'} info;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n{temp}\n    include {directory / 'edrys-relay.conf'};\n}}\n"
        )
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = require_tool("nginx", "nginx")
        conf = str(self.directory / "nginx.conf")
        base = [binary, "-p", str(self.directory), "-e", str(self.directory / "error.log")]
        check = await asyncio.create_subprocess_exec(
            *base, "-t", "-c", conf, stderr=asyncio.subprocess.PIPE
        )
        _, err = await check.communicate()
        assert check.returncode == 0, err.decode()
        self.proc = await asyncio.create_subprocess_exec(
            *base, "-c", conf, "-g", "daemon off;", stderr=asyncio.subprocess.DEVNULL
        )
        async with asyncio.timeout(10):
            while True:
                assert self.proc.returncode is None, (self.directory / "error.log").read_text()
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.https_port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                return

    async def stop(self) -> None:
        """Stop our master process by its PID (SIGQUIT: graceful; then SIGKILL)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def log_text(self) -> str:
        """Everything nginx logged (access, site errors, main errors)."""
        return "".join(path.read_text(errors="replace") for path in sorted(self.logs.glob("*.log")))


def unit_service() -> dict[str, list[str]]:
    """The ``[Service]`` section of the systemd unit: key -> values, in order."""
    section: dict[str, list[str]] = {}
    current = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line
            continue
        if current == "[Service]":
            key, _, value = line.partition("=")
            section.setdefault(key, []).append(value)
    return section


def unit_flags(*, port: int, data_dir: Path, drop: tuple[str, ...] = ()) -> list[str]:
    """The flags of the unit's ``ExecStart`` after ``serve``, with our port and data directory.

    ``drop`` removes flags (each with its value) to run a variant of the recipe.
    """
    (exec_start,) = unit_service()["ExecStart"]
    words = shlex.split(exec_start)
    assert words[0].endswith("/edrys-relay") and words[1] == "serve", words
    flags = words[2:]
    out: list[str] = []
    i = 0
    while i < len(flags):
        flag = flags[i]
        value = flags[i + 1] if i + 1 < len(flags) and not flags[i + 1].startswith("--") else None
        i += 1 if value is None else 2
        if flag in drop:
            continue
        if flag == "--port":
            value = str(port)
        elif flag == "--data-dir":
            value = str(data_dir)
        out.extend([flag] if value is None else [flag, value])
    assert "--port" in out and "--data-dir" in out, out
    return out
