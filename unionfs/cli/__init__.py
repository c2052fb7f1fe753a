"""The ``unionfs`` command: one module per subcommand, each ``add_parser`` + ``run(args)``.

Besides ``unionfs mount ...``, the program answers the two calling conventions of mount
programs: ``unionfs -o OPTS MNT`` (fuse-overlayfs, podman) and ``unionfs SOURCE MNT -o OPTS``
(mount(8) through /sbin/mount.fuse.unionfs). Errors a user can act on are one line on
stderr and a non-zero exit; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import typing
from collections.abc import Sequence
from types import ModuleType

from unionfs import __version__
from unionfs.errors import UserError

# Command -> its module in unionfs.cli, imported only when needed: podman starts the mount
# program for every container and waits for it, and the runtime's imports alone cost more
# than the mount (~0.15 s here).
COMMANDS = {
    "mount": "mount",
    "umount": "umount",
    "index": "index",
    "run": "run",
    "start": "start",
    "ps": "ps",
    "stats": "stats",
    "kill": "kill",
    "exec": "exec",
    "rm": "rm",
    "import": "importimage",
    "images": "images",
    "inspect": "inspect",
    "history": "history",
    "rmi": "rmi",
    "tag": "tag",
    "save": "save",
    "create": "create",
    "diff": "diff",
    "commit": "commit",
    "export-layer": "exportlayer",
    "import-layer": "importlayer",
    "push": "push",
    "convert": "convert",
    "pull": "pull",
    "unshare": "unshare",
    "oci": "oci",
}


def command(name: str) -> ModuleType:
    return importlib.import_module(f"unionfs.cli.{COMMANDS[name]}")


_GLOBAL_FLAGS = ("-h", "--help", "--version", "-V")


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (through UserError), not argparse's usage block."""

    def error(self, message: str) -> typing.NoReturn:
        raise UserError(f"{self.prog}: {message} (see --help)", exit_code=2)


def build_parser(names: Sequence[str] = tuple(COMMANDS)) -> argparse.ArgumentParser:
    """The parser of the commands *names* (all by default). Given one command, only that
    command's module is imported: ``unionfs mount`` starts without the runtime, the
    registry client and the rest (~1 s of imports on a busy machine, in every mount)."""
    parser = OneLineParser(
        prog="unionfs", description="A union filesystem in userspace with overlayfs semantics."
    )
    parser.add_argument("--version", action="version", version=f"unionfs {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--root", metavar="DIR", help="the store (sets UNIONFS_HOME)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in names:
        command(name).add_parser(sub)
    return parser


def _take_root(args: list[str]) -> list[str]:
    """A global ``--root DIR`` (before the command) becomes UNIONFS_HOME for every command."""
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in COMMANDS or not arg.startswith("-"):
            return rest + args[i:]
        if arg == "--root":
            if i + 1 >= len(args):
                raise UserError("--root needs a directory", exit_code=2)
            os.environ["UNIONFS_HOME"] = os.path.abspath(args[i + 1])
            i += 2
            continue
        if arg.startswith("--root="):
            os.environ["UNIONFS_HOME"] = os.path.abspath(arg.partition("=")[2])
        else:
            rest.append(arg)
        i += 1
    return rest


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    try:
        args_list = _take_root(args_list)
        first = next((a for a in args_list if a != "--debug"), None)
        if first == "oci":  # its own grammar (runc's), global flags and all
            from unionfs.cli import oci

            rest = args_list[args_list.index("oci") + 1 :]
            return oci.main([*(["--debug"] if debug and "--debug" not in rest else []), *rest])
        if first is not None and first not in COMMANDS and first not in _GLOBAL_FLAGS:
            # The mount-program forms: [SOURCE] MNT -o OPTS, -o OPTS MNT, -f -o OPTS MNT...
            mount = command("mount")
            result: int = mount.run(mount.parse_helper_args(args_list))
            return result
        if first == "-V":
            print(f"unionfs {__version__}")
            return 0
        parser = build_parser([first] if first in COMMANDS else tuple(COMMANDS))
        args = parser.parse_args(args_list)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        code: int = command(args.command).run(args)
        return code
    except UserError as exc:
        message = exc.message.removeprefix("unionfs: ")
        print(f"unionfs: {message}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"unionfs: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:
        if debug:
            raise
        print("unionfs: internal error (rerun with --debug for the traceback)", file=sys.stderr)
        return 70
