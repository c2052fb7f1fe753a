"""``unionfs create [RUN FLAGS] IMAGE [CMD ARGS...]``: a container (an empty upper over the
image's layers), not started; prints its id.

The flags are ``run``'s, resolved as ``run IMAGE`` resolves them (the image's Entrypoint,
Cmd, Env, WorkingDir and User as defaults), and the resulting spec is saved with the
container for ``unionfs start``. Without a command, and with none in the image, it is
the plain container of before: ``unionfs mount C`` mounts it, ``start`` refuses it.
Flags may also follow IMAGE, before the command (``create IMAGE --name C``). With
``--pull missing|lazy`` an IMAGE not in the store is pulled first, as ``run --pull`` does.
"""

from __future__ import annotations

import argparse
import typing

from unionfs.cli import OneLineParser
from unionfs.cli import run as run_cli
from unionfs.cli.storecli import add_root, open_store
from unionfs.containers import lifecycle
from unionfs.errors import UserError
from unionfs.runtime.state import Saved


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "create",
        help="create a container on an image (not started)",
        description="Create a container: an empty upper layer over IMAGE's layers, with the "
        "command and flags that `unionfs start` will run (as `unionfs run IMAGE` would; "
        "the image's default command when none is given). Flags may also come right after "
        "IMAGE, before the command.",
    )
    _add_flags(p)
    p.add_argument("image", metavar="IMAGE", nargs="?")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD ARGS")


def _add_flags(p: argparse.ArgumentParser) -> None:
    run_cli.add_run_flags(p)
    run_cli.add_pull_flags(p)
    add_root(p)


def _flags_after_image(args: argparse.Namespace) -> argparse.Namespace:
    """``create IMAGE --name C [CMD...]`` (the order of before): flags up to the command."""
    if not args.argv or not args.argv[0].startswith("-") or args.argv[0] == "--":
        return args
    later = OneLineParser(prog="unionfs create IMAGE", add_help=False)
    _add_flags(later)
    later.add_argument("argv", nargs=argparse.REMAINDER)
    rest = list(args.argv)
    args.argv = []
    return later.parse_args(rest, namespace=args)


def _run_flags_given(args: argparse.Namespace) -> list[str]:
    given = [f"--{k}" for k in ("hostname", "memory", "cpus", "pids", "workdir", "user",
                                "network", "entrypoint")
             if getattr(args, k) is not None]  # fmt: skip
    given += [f"--{k.replace('_', '-')}" for k in run_cli.CLI_LISTS if getattr(args, k)]
    given += ["--rm"] * args.rm + ["--stop-timeout"] * (args.stop_timeout != 10.0)
    given += [f"--{k.replace('_', '-')}" for k in ("privileged", "interactive", "tty",
                                                   "read_only") if getattr(args, k)]  # fmt: skip
    return given


def run(args: argparse.Namespace) -> int:
    if args.image is None:
        raise UserError("unionfs create: give IMAGE, then the command if any (see --help)", 2)
    args = _flags_after_image(args)
    command = list(args.argv[1:] if args.argv[:1] == ["--"] else args.argv)

    def spec_for(config: dict[str, typing.Any], lowers: tuple[str, ...]) -> Saved | None:
        found = run_cli.spec_for_image(args, args.image, command, config, lowers)
        if found is not None:
            return Saved(found, args.stop_timeout, run_cli.check_runtime(args.runtime))
        given = _run_flags_given(args)
        if given:
            raise UserError(f"{given[0]} is for a command, and image {args.image} has no "
                            "default one: give it after IMAGE")  # fmt: skip
        return None

    run_cli.pull_if_missing(args, args.image, args.root)
    with open_store(args) as store:
        state = lifecycle.create(store, args.image, args.name, spec_for)
    print(state.id)
    return 0
