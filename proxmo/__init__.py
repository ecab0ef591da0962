"""proxmo package."""
