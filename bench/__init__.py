"""Benchmarks of imagine-bot against the local fakes (see bench/README.md)."""
