"""Pure security policy (sans-I/O): room tokens, Origin rules, client addresses, rate buckets."""
