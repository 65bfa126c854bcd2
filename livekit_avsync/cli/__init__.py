"""The ``livekit-avsync`` command line (entry point :func:`livekit_avsync.cli.main.main`).

:class:`CLIError` lives here so subcommand modules and the entry point share one class, also
when the entry point runs as ``python -m livekit_avsync.cli.main``.
"""

from __future__ import annotations

__all__ = ["CLIError"]


class CLIError(Exception):
    """An error the user can fix; the command line prints its message as one line."""
