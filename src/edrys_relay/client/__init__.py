"""Python client for Edrys classrooms: y-websocket or y-webrtc with one API.

Example::

    async with Classroom("ws://localhost:1234", "MyRoom", transport="auto") as classroom:
        async with asyncio.timeout(10):
            await classroom.wait_synced()
        classroom.doc.get("setup", type=pycrdt.Map)

See ``docs/client.md``. The WebRTC transport needs the ``webrtc`` extra (aiortc).
"""

from edrys_relay.client.awareness import Awareness
from edrys_relay.client.classroom import Classroom, MessageListener
from edrys_relay.client.document import SharedDocument
from edrys_relay.client.options import ClientOptions, Framing, Transport

__all__ = [
    "Awareness",
    "Classroom",
    "ClientOptions",
    "Framing",
    "MessageListener",
    "SharedDocument",
    "Transport",
]
