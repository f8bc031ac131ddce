"""The run directory: its layout, its kinds, and reading and writing every file in it."""
