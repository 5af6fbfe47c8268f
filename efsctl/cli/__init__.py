"""The command layer: thin typer modules over the stack engine and drive layers."""

from efsctl.cli.app import app, main

__all__ = ["app", "main"]
