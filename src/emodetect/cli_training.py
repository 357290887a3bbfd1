"""Sub-commands `emodetect train` and `emodetect evaluate` (filled in by the training utilities)."""

from __future__ import annotations

import argparse


def add_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the training sub-commands to the `emodetect` parser."""
