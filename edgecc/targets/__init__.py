"""Target-specific builds and runners (firmware projects, emulators)."""
