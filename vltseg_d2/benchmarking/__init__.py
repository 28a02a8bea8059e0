"""Side-by-side runs against the original code (read at run time from user checkouts)."""
