"""The model zoo: released files by name (catalog), resumable checked downloads, conversion."""
