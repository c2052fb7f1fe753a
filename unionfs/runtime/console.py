"""Handing a container's terminal to its caller: the pty master over ``--console-socket``.

conmon (and runc's callers generally) listen on a Unix socket and expect one message
whose SCM_RIGHTS carry the master fd, the data being its name, as runc sends it.
"""

from __future__ import annotations

import socket

from unionfs.errors import UserError


def send_master(path: str, master: int) -> None:
    """Connect to the console socket *path* and send it *master*."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
            socket.send_fds(sock, [b"/dev/ptmx"], [master])
        except OSError as exc:
            raise UserError(f"console socket {path}: {exc.strerror}") from None
