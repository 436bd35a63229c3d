"""Fuzz harness for the decoders (issue #6, threats.md B6): targets, seeds and a long runner."""
