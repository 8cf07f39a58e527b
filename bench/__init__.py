"""Benchmarks. Figures are ratios against a baseline measured in the same run (machines are noisy)."""
