"""Errors a user can act on.

    Exception
     +-- UserError          bad input or environment: one line on stderr, exit_code, no traceback
     +-- OSError            from the filesystem: below the FUSE edge it carries a real errno;
                            at the CLI it becomes one line too

Anything else reaching the CLI or a FUSE handler is a bug and is logged with its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user asked for; the message is shown as it is."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
