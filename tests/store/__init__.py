"""Queue-store tests (a package so the modules can share helpers by relative import)."""
