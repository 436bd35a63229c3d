"""The asyncio server: transport adapter, hubs for each door, HTTP responses."""
