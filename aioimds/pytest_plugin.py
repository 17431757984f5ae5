"""pytest fixtures for testing services against the aioimds emulator."""
