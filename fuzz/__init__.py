"""Fuzz harness for the decoders (issue #6, docs/threats.md B6): targets, seeds, a long runner."""
