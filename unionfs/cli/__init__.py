"""The ``unionfs`` command: one module per subcommand, each ``add_parser`` + ``run(args)``.

Besides ``unionfs mount ...``, the program answers the two calling conventions of mount
programs: ``unionfs -o OPTS MNT`` (fuse-overlayfs, podman) and ``unionfs SOURCE MNT -o OPTS``
(mount(8) through /sbin/mount.fuse.unionfs); any other unknown first word is an unknown
command (``verbs``). Errors a user can act on are one line on stderr and a non-zero exit;
``--debug`` shows tracebacks.
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
from unionfs.cli.verbs import COMMANDS, GLOBAL_FLAGS, GROUPS, Sub, is_mount_program_call, known
from unionfs.cli.verbs import unknown as unknown_verb
from unionfs.errors import UserError

__all__ = ["COMMANDS", "OneLineParser", "build_parser", "command", "main"]

_MODULE = "_unionfs_module"  # the attribute of parsed args naming the verb's module


def command(name: str) -> ModuleType:
    """The module of top-level command *name*."""
    return module(COMMANDS[name])


def module(name: str) -> ModuleType:
    return importlib.import_module(f"unionfs.cli.{name}")


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (through UserError), not argparse's usage block; an
    unknown subcommand gets a did-you-mean."""

    def error(self, message: str) -> typing.NoReturn:
        if message.startswith("argument ") and ": invalid choice: " in message:
            word = message.split(": invalid choice: ", 1)[1].split("'")[1]
            choices = [c for a in self._actions if isinstance(a, argparse._SubParsersAction)
                       for c in a.choices]  # fmt: skip
            if choices:
                raise unknown_verb(word, choices, self.prog)
        verb = self.prog.removeprefix("unionfs").strip()  # "unionfs: pull: argument ..."
        raise UserError(f"{verb + ': ' if verb else ''}{message} (see --help)", exit_code=2)


class _Named:
    """What a verb module's ``add_parser(sub)`` is given: it adds its parser under *name*
    (a group's spelling of the verb), with the group's aliases and defaults, and marks
    the parsed arguments with the module that runs them."""

    def __init__(self, sub: argparse._SubParsersAction[OneLineParser], name: str | None,
                 target: str, entry: Sub | None = None) -> None:  # fmt: skip
        self.sub = sub
        self.name = name
        self.target = target
        self.entry = entry

    def add_parser(self, name: str, **kwargs: typing.Any) -> argparse.ArgumentParser:
        if self.entry is not None:
            kwargs["aliases"] = [*kwargs.get("aliases", ()), *self.entry.aliases]
        self.parser = self.sub.add_parser(self.name or name, **kwargs)
        self.parser.set_defaults(**{_MODULE: self.target})
        return self.parser

    def finish(self) -> None:
        """The group's defaults, once the verb's arguments exist (they override theirs)."""
        if self.entry is not None and self.entry.defaults:
            self.parser.set_defaults(**self.entry.defaults)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of command or group *only* alone: then only its
    modules are imported (``unionfs mount``, podman's mount program, starts without the
    runtime, the registry client and the rest)."""
    parser = OneLineParser(
        prog="unionfs", description="A union filesystem in userspace with overlayfs semantics."
    )
    parser.add_argument("--version", action="version", version=f"unionfs {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--root", metavar="DIR", help="the store (sets UNIONFS_HOME)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, target in COMMANDS.items():
        if only is None or only == name:
            module(target).add_parser(typing.cast(typing.Any, _Named(sub, None, target)))
    for group, (summary, verbs) in GROUPS.items():
        if only is not None and only != group:
            continue
        gp = sub.add_parser(group, help=summary, description=f"{group.capitalize()} commands, "
                            f"as podman spells them: unionfs {group} COMMAND.")  # fmt: skip
        gsub = gp.add_subparsers(dest="subcommand", metavar="COMMAND", parser_class=OneLineParser)
        for verb, entry in verbs.items():
            named = _Named(gsub, verb, entry.module, entry)
            module(entry.module).add_parser(typing.cast(typing.Any, named))
            named.finish()
    sub.add_parser("help", help="show the help of unionfs or of a command").add_argument(
        "topic", nargs="*", metavar="COMMAND"
    )
    return parser


def _take_root(args: list[str]) -> list[str]:
    """A global ``--root DIR`` (before the command) becomes UNIONFS_HOME for every command."""
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if known(arg) or not arg.startswith("-"):
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


def _dispatch(args_list: list[str], debug: bool) -> int:
    first = next((a for a in args_list if a != "--debug"), None)
    if first == "oci":  # its own grammar (runc's), global flags and all
        from unionfs.cli import oci

        rest = args_list[args_list.index("oci") + 1 :]
        return oci.main([*(["--debug"] if debug and "--debug" not in rest else []), *rest])
    if first is not None and not known(first) and first not in GLOBAL_FLAGS:
        if is_mount_program_call(args_list):
            # The mount-program forms: [SOURCE] MNT -o OPTS, -o OPTS MNT, -f -o OPTS MNT...
            mount = command("mount")
            result: int = mount.run(mount.parse_helper_args(args_list))
            return result
        if not first.startswith("-"):
            raise unknown_verb(first, sorted([*COMMANDS, *GROUPS, "help"]))
    if first == "-V":
        print(f"unionfs {__version__}")
        return 0
    parser = build_parser(first if first is not None and known(first) and first != "help"
                          else None)  # fmt: skip
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "help":
        parser.parse_args([*args.topic, "--help"])
        return 0
    target = getattr(args, _MODULE, None)
    if target is None:  # a group without its subcommand
        verbs = ", ".join(GROUPS[args.command][1])
        raise UserError(f"{args.command}: give a command ({verbs}); see "
                        f"unionfs {args.command} --help", exit_code=2)  # fmt: skip
    code: int = module(target).run(args)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    try:
        return _dispatch(_take_root(args_list), debug)
    except UserError as exc:
        message = exc.message.removeprefix("unionfs: ")
        print(f"unionfs: {message}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # A reader that stopped early (`unionfs images | head -1`): quietly, as podman.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
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
