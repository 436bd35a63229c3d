"""The protocol package stays sans-I/O: no module under it imports asyncio or socket, nor the
layers above it (server, storage, client)."""

import ast
from pathlib import Path

import edrys_relay.protocol

FORBIDDEN = {"asyncio", "socket", "websockets", "selectors", "ssl"}
UPPER_LAYERS = ("edrys_relay.server", "edrys_relay.storage", "edrys_relay.client")


def test_protocol_modules_do_not_import_io() -> None:
    root = Path(edrys_relay.protocol.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(UPPER_LAYERS)]
    assert offenders == []
    assert len(list(root.rglob("*.py"))) >= 5
