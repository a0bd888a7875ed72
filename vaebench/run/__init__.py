"""The run layer: one run's data, checkpoint, fingerprint, training loop (fit and its callbacks), scoring and
figures. It reads and writes files; it knows nothing of the report, the grid engines or the CLI."""
