"""Sans-I/O protocol layer: bytes in, events out; events in, bytes out.

Nothing under this package imports asyncio or socket (a unit test enforces it).
"""
