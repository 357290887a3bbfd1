"""Sub-command `emodetect video` (filled in by the video module)."""

from __future__ import annotations

import argparse


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the video sub-command to the `emodetect` parser."""
