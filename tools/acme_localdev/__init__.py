"""Local development tooling behind `make demo` and `make test` (not deployed)."""
