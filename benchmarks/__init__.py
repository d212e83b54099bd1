"""Benchmarks behind `launch/benchmark.py --mode …`; each prints figures and ends with one JSON
line `{"mode", "model", "unit", "jax", "torch", "ratio"}`."""
