"""Scale-out on Redis: many nodes share rooms, signaling topics and streams (docs/deployment.md).

``bus.py`` is the Redis room bus (the y-redis design: a node appends every update to the room's
Redis Stream and every node, the writer's included, delivers from the stream), ``worker.py``
compacts streams under a lease, ``relays.py`` carries signaling and ``/stream`` frames across
nodes, ``keys.py`` names every key.
"""
