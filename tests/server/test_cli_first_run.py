"""What a new user types first (issue 14): every command works or says in one line what is wrong.

Each bad input of the issue is run as a real ``python -m edrys_relay`` process and must end with
the expected exit status and message, and without a traceback.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pycrdt
import pytest

from edrys_relay.admin import import_update
from edrys_relay.cli import main
from edrys_relay.client import Classroom
from edrys_relay.protocol.routing import RoomName
from edrys_relay.server.app import RelayServer
from edrys_relay.storage.sqlite import SQLiteStore
from tests.conftest import StartRelay
from tests.server.relayproc import RelayProcess, child_env, free_port, run_cli
from tests.server.ydata import text_updates

SECRET = "first-run-secret-0123456789"


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    code: int
    message: str


def dead_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


def stored_room(data_dir: Path, room: str) -> None:
    """A database in ``data_dir`` holding ``room`` with two records."""
    store = SQLiteStore(data_dir)
    try:
        for update in text_updates("a", "b"):
            import_update(store, RoomName(room), update)
    finally:
        store.close()


async def test_bad_input_is_one_line_and_an_exit_status(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    live = await start_relay()
    guarded = await start_relay(auth_secrets=(SECRET,))
    url, closed = f"ws://127.0.0.1:{live.port}", f"127.0.0.1:{dead_port()}"
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\xff\xff\xff")
    data = tmp_path / "data"
    stored_room(data, "Stored")
    cases = [
        Case(("serve", "--data-dir", str(a_file)), 1, f"data directory {a_file} is a file"),
        Case(("serve", "--data-dir", f"{a_file}/x"), 1, "a part of its path is a file"),
        Case(("serve", "--host", "192.0.2.1", "--store", "memory"), 1, "cannot listen on 192.0"),
        Case(("compact", "", f"--data-dir={data}"), 1, "bad room name ''"),
        Case(("rooms", f"--data-dir={tmp_path}/none"), 1, "no database in"),
        Case(("export", "Nope", f"--data-dir={data}"), 1, "no stored room named Nope"),
        Case(("import", "R", f"{tmp_path}/none.bin", f"--data-dir={data}"), 1, "No such file"),
        Case(("import", "R", str(garbage), f"--data-dir={data}"), 1, "edrys-relay import: "),
        Case(("join", closed, "R"), 1, f"cannot connect to {closed}: Connection refused"),
        Case(("join", "ftp://x", "R"), 2, "'ftp://x' is not a server address: expected ws://"),
        Case(("join", url, "R", "--set", "novalue"), 2, "expected KEY=JSON"),
        Case(("join", url, "R", "--set", "a={"), 2, "--set 'a={'"),
        Case(("join", url, ""), 2, "the room name is empty"),
        Case(("join", url, "R", "--sync-timeout", "-1"), 2, "must be more than 0"),
        Case(("join", url, "R", "--signaling", "ftp://x"), 2, "is not a server address"),
        Case(("join", url, "R", "--ice-server", "bogus"), 2, "is not a stun:, stuns:"),
        Case(
            ("join", url, "bad room", "--transport", "websocket", "--sync-timeout", "1"),
            1,
            "not in sync with bad room within 1.0s: ",
        ),
        Case(
            ("join", f"127.0.0.1:{guarded.port}", "R", "--sync-timeout", "1"),
            1,
            "HTTP 401",
        ),
        Case(("doctor", ""), 2, "no server address given"),
        Case(("doctor", "ftp://x"), 2, "is not a server address"),
        Case(("doctor", url, "--timeout", "-1"), 2, "must be more than 0"),
        Case(
            ("doctor", closed, "--timeout", "2"),
            1,
            "skip  WebRTC data channel: not checked: the signaling door failed",
        ),
    ]
    results = await asyncio.gather(*(run_cli(*case.args, timeout=60) for case in cases))
    failures = []
    for case, (code, out, err) in zip(cases, results, strict=True):
        text = (out + err).decode()
        if code != case.code or case.message not in text or "Traceback" in text:
            failures.append(f"{case.args} -> {code}:\n{text}")
    assert not failures, "\n\n".join(failures)


async def test_join_set_in_the_default_mode_on_a_fresh_server(relay: RelayServer) -> None:
    """The ``join --help`` example: auto, an empty room, exit 0, and the truth about the write."""
    room = "MyRoom" + uuid.uuid4().hex[:6]
    code, out, err = await run_cli(
        "join", f"ws://localhost:{relay.port}", room, "--set", 'lamp={"on":true}', timeout=60
    )
    assert code == 0, err
    assert f"joined {room}: webrtc (auto: on WebRTC, the room is empty)" in out.decode()
    assert "wrote lamp into 'data' via webrtc" in out.decode()
    assert f"warning: no peer is in {room}, so nobody received it" in err.decode()


async def test_join_and_doctor_take_host_port_and_http_urls(relay: RelayServer) -> None:
    room = "Addr" + uuid.uuid4().hex[:6]
    for i, server in enumerate([f"127.0.0.1:{relay.port}", f"http://127.0.0.1:{relay.port}/"]):
        code, out, err = await run_cli(
            "join", server, room, "--transport", "websocket", "--set", f"k{i}=true"
        )
        assert code == 0, err
        code, out, err = await run_cli("doctor", server, "--no-webrtc")
        assert code == 0, out + err
        assert f"GET http://127.0.0.1:{relay.port}/healthz: 200" in out.decode()
    async with Classroom(f"127.0.0.1:{relay.port}", room, transport="websocket") as member:
        async with asyncio.timeout(10):
            await member.wait_synced()
        assert member.doc.get("data", type=pycrdt.Map).to_py() == {"k0": True, "k1": True}


async def read_line(stream: asyncio.StreamReader, needle: str, timeout: float = 30.0) -> str:
    seen = ""
    async with asyncio.timeout(timeout):
        while needle not in seen:
            line = await stream.readline()
            assert line, f"stream ended before {needle!r}:\n{seen}"
            seen += line.decode()
    return seen


@pytest.mark.parametrize("transport", ["auto", "websocket"])
async def test_watch_mode_says_when_the_server_goes_and_comes_back(
    tmp_path: Path, transport: str
) -> None:
    server = RelayProcess(free_port(), tmp_path / "data", "--store=memory")
    await server.start()
    watcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edrys_relay",
        "join",
        f"127.0.0.1:{server.port}",
        "Watch",
        "--transport",
        transport,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**child_env(), "PYTHONUNBUFFERED": "1"},
    )
    assert watcher.stdout is not None and watcher.stderr is not None
    try:
        await read_line(watcher.stdout, "joined Watch: ")
        assert await server.signal(signal.SIGTERM) == 0
        lost = await read_line(watcher.stderr, "; reconnecting")
        assert "edrys-relay join: connection lost: " in lost
        await server.start()
        await read_line(watcher.stderr, "edrys-relay join: connected again via ")
        watcher.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            assert await watcher.wait() == 0
    finally:
        if watcher.returncode is None:
            watcher.kill()
            await watcher.wait()
        await server.stop()


def test_serve_keeps_serving_when_its_output_is_closed(tmp_path: Path) -> None:
    """``serve | head -1``: the reader goes away; no "cannot listen ... Broken pipe"."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "edrys_relay", "serve", "--host=127.0.0.1", f"--port={port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**child_env(), "EDRYS_RELAY_STORE": "memory"},
        text=True,
    )
    assert process.stdout is not None
    try:
        assert f"listening on 127.0.0.1:{port}" in process.stdout.readline()
        process.stdout.close()  # what head does after one line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
            assert reply.status == 200
        process.send_signal(signal.SIGTERM)  # the shutdown line now meets the closed pipe
        assert process.wait(timeout=20) == 0
        assert process.stderr is not None
        errors = process.stderr.read()
        assert "cannot listen" not in errors and "Broken pipe" not in errors, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("unshare") is None, reason="root needs unshare -m"
)
def test_an_unwritable_data_dir_is_named_with_the_cause(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    serve = [sys.executable, "-m", "edrys_relay", "serve", "--port=0", f"--data-dir={data}"]
    if os.geteuid() == 0:  # root writes through permissions: mount the directory read-only
        mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        command = ["unshare", "-m", "sh", "-c", mount, str(data), *serve]
        cause = "Read-only file system"
    else:
        data.chmod(0o555)
        command, cause = serve, "Permission denied"
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=child_env(), check=False
    )
    assert result.returncode == 1, result.stderr
    assert f"storage: cannot write in data directory {data}: {cause}" in result.stderr
    assert "Traceback" not in result.stderr


async def test_compact_with_an_empty_room_name_compacts_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stored_room(data, "Stored")
    code, _out, err = await run_cli("compact", "", f"--data-dir={data}")
    assert code == 1 and b"bad room name ''" in err
    code, out, _err = await run_cli("rooms", f"--data-dir={data}")
    assert code == 0
    (row,) = [line for line in out.decode().splitlines() if line.startswith("Stored")]
    assert row.split()[1] == "2"  # both records still there: nothing was merged


@pytest.mark.parametrize(
    ("command", "needles"),
    [
        (["join"], ["auto: WebRTC, moving to the server's WebSocket door", "HOST:PORT"]),
        (["doctor"], ["two peers on this machine", "exit status"]),
        (["rooms"], ["List the stored rooms", "stopped server"]),
        (["export"], ["ROOM ", "room name: the Yjs document name", "stopped server"]),
        (["import"], ["ROOM ", "FILE ", "stopped server"]),
        (["compact"], ["(default: every stored room)", "stopped server"]),
    ],
)
def test_commands_explain_their_arguments(
    capsys: pytest.CaptureFixture[str], command: list[str], needles: list[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for needle in needles:
        assert " ".join(needle.split()) in text, needle


def test_ctrl_c_before_a_command_handles_it_is_no_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def interrupted(_args: object) -> int:
        raise KeyboardInterrupt

    from edrys_relay.cli import doctor

    monkeypatch.setattr(doctor, "run", interrupted)
    assert main(["doctor", "localhost:1"]) == 130
