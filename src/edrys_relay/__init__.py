"""edrys-relay: one-port backend for Edrys-Lite classrooms.

Serves the y-websocket relay, the y-webrtc signaling endpoint and the video-stream relay
on one port. See ``docs/design.md`` for the architecture.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
