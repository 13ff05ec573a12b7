"""Comparing runs: quality checks, diffs, sweeps, players and the sweep report."""
