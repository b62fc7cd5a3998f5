"""Benchmarks that print markdown tables of measured times and ratios; they never assert."""
