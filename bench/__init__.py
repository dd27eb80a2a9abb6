"""Benchmarks: each module prints its figures together with the conditions."""
