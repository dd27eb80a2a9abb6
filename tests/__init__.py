"""cmppsvc test suite (run with trial)."""
