"""The command line a teacher types: banner, flags in both forms, environment, clean exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from edrys_relay.cli import build_parser, main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edrys_relay", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # The memory store: these tests must not leave a database in the working directory.
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "EDRYS_RELAY_STORE": "memory",
            **(env or {}),
        },
    )


def read_banner(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines = []
    for _ in range(40):  # the banner is short; bounded read
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("  WebRTC mode     #comm="):
            return lines
    raise AssertionError("no banner:\n" + "\n".join(lines))


def test_serve_prints_urls_and_exits_cleanly_on_sigterm() -> None:
    port = free_port()
    process = start("--host=127.0.0.1", f"--port={port}")
    try:
        banner = "\n".join(read_banner(process))
        assert f"listening on 127.0.0.1:{port}" in banner
        assert f"websocket server URL   ws://127.0.0.1:{port}" in banner
        assert f"signaling server URL   ws://127.0.0.1:{port}" in banner
        assert "#comm=N4Ig" in banner
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            assert reply.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_environment_host_and_port() -> None:
    port = free_port()
    process = start(env={"HOST": "127.0.0.1", "PORT": str(port)})
    try:
        assert f"listening on 127.0.0.1:{port}" in "\n".join(read_banner(process))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "4000")
    monkeypatch.setenv("HOST", "127.0.0.2")
    args = build_parser().parse_args(["serve", "--port", "5000"])
    assert (args.host, args.port) == ("127.0.0.2", 5000)


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "edrys_relay",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(sys.path),
                "EDRYS_RELAY_STORE": "memory",
            },
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_bad_values_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--port", "many"])
    assert info.value.code == 2
    assert main(["serve", "--port", "70000"]) == 2
    assert "not a port number" in capsys.readouterr().err
