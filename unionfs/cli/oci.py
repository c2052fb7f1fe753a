"""The OCI runtime command line (runc's): ``unionfs oci ARGS`` and the ``unionfs-runtime``
program, the same grammar; podman, conmon and containerd call a runtime this way.

A thin face: each command parses its flags and calls ``runtime.lifecycle`` /
``runtime.ociexec``. Errors are one line on stderr (``--log FILE`` gets it too, as JSON
with ``--log-format json``: what callers that read runc's log expect); the exit code is
1, or the failed step's (127: the program was not found). ``unionfs-runtime`` is its own
executable because ``podman --runtime PATH`` runs PATH with runc's argv and takes the
runtime's name from its basename.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import signal
import sys
import typing
from collections.abc import Sequence

from unionfs import __version__
from unionfs.errors import UserError

if typing.TYPE_CHECKING:
    from unionfs.runtime.ocistate import Root

PROG = "unionfs-runtime"
SPEC_VERSION = "1.0.2"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        command = self.prog.removeprefix(PROG).strip()  # "kill" in "unionfs-runtime kill"
        raise UserError(f"{command}: {message}" if command else message, exit_code=2)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "oci",
        help="the OCI runtime command line (as runc): create, start, state, kill, delete...",
        description="The OCI runtime command line, as runc's (also installed as "
        "unionfs-runtime, for podman --runtime): see `unionfs oci --help`.",
        add_help=False,
    )
    p.add_argument("args", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    return main(args.args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="An OCI runtime (runc's command line) that sets "
                     "containers up with unionfs's plan and executor.")  # fmt: skip
    parser.add_argument("-v", "--version", action="store_true", help="print the version")
    parser.add_argument("--root", default=None, metavar="DIR",
                        help="container state (default /run/unionfs-runtime)")  # fmt: skip
    parser.add_argument("--log", metavar="FILE", help="also write errors to FILE")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--systemd-cgroup", action="store_true",
                        help="refused: only cgroupfs paths are supported")  # fmt: skip
    parser.add_argument("--debug", action="store_true", help="tracebacks on internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("create", help="set a container up; its process waits for start")
    p.add_argument("--bundle", "-b", default=".", metavar="DIR")
    p.add_argument("--pid-file", metavar="FILE")
    p.add_argument("--console-socket", metavar="SOCKET")
    p.add_argument("--no-pivot", action="store_true",
                   help="accepted; pivot_root is always used (it is the stronger)")  # fmt: skip
    p.add_argument("--no-new-keyring", action="store_true", help="accepted (no keyring made)")
    p.add_argument("--preserve-fds", type=int, default=0, help="only 0 is supported")
    p.add_argument("id", metavar="ID")
    for name, what in (("start", "run the created container's program"),
                       ("state", "print the OCI state JSON")):  # fmt: skip
        sub.add_parser(name, help=what).add_argument("id", metavar="ID")
    p = sub.add_parser("kill", help="send a signal to the container's process")
    p.add_argument("--all", "-a", action="store_true", help="to every process in its cgroup")
    p.add_argument("id", metavar="ID")
    p.add_argument("signal", nargs="?", default="SIGTERM")
    p = sub.add_parser("delete", help="remove a stopped container (--force: any)")
    p.add_argument("--force", "-f", action="store_true")
    p.add_argument("id", metavar="ID")
    p = sub.add_parser("exec", help="run another process in the container")
    p.add_argument("--process", "-p", metavar="FILE", help="an OCI process JSON")
    p.add_argument("--tty", "-t", action="store_true")
    p.add_argument("--detach", "-d", action="store_true")
    p.add_argument("--pid-file", metavar="FILE")
    p.add_argument("--console-socket", metavar="SOCKET")
    p.add_argument("--cwd", metavar="DIR")
    p.add_argument("--env", "-e", action="append", default=[], metavar="K=V")
    p.add_argument("--user", "-u", metavar="UID[:GID]")
    p.add_argument("--additional-gids", "-g", action="append", default=[], type=int)
    p.add_argument("--cap", "-c", action="append", default=[], metavar="CAP")
    p.add_argument("--no-new-privs", action="store_true")
    p.add_argument("--preserve-fds", type=int, default=0, help="only 0 is supported")
    p.add_argument("id", metavar="ID")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND ARGS")
    p = sub.add_parser("ps", help="the container's processes")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.add_argument("id", metavar="ID")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    p = sub.add_parser("list", help="the containers under --root")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.add_argument("--quiet", "-q", action="store_true")
    sub.add_parser("features", help="the runtime-spec features document")
    return parser


def parse_signal(text: str) -> int:
    """``9``, ``KILL`` or ``SIGKILL``."""
    if text.isdigit():
        return int(text)
    name = text.upper() if text.upper().startswith("SIG") else "SIG" + text.upper()
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise UserError(f"unknown signal {text!r}") from None


def _log(args: argparse.Namespace | None, message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)
    if args is None or not args.log:
        return
    now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
    if args.log_format == "json":
        line = json.dumps({"level": "error", "msg": message, "time": now})
    else:
        line = f"time={json.dumps(now)} level=error msg={json.dumps(message)}"
    with open(args.log, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = None
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        return _dispatch(args)
    except UserError as exc:
        _log(args, exc.message)
        return exc.exit_code
    except OSError as exc:
        if args is not None and args.debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        _log(args, f"{exc.strerror or exc}{where}")
        return 1
    except Exception as exc:
        if args is not None and args.debug:
            raise
        from unionfs.runtime.helper import StepError

        if isinstance(exc, StepError):
            _log(args, exc.message)
            return exc.code
        _log(args, f"internal error: {exc!r} (rerun with --debug for the traceback)")
        return 70


def _dispatch(args: argparse.Namespace) -> int:
    if args.version:
        print(f"{PROG} version {__version__}\nspec: {SPEC_VERSION}")
        return 0
    if args.systemd_cgroup:
        raise UserError("--systemd-cgroup is not supported: use cgroupfs paths (podman "
                        "--cgroup-manager cgroupfs)")  # fmt: skip
    if args.command is None:
        raise UserError("give a command (see --help)", exit_code=2)
    if args.command == "features":
        from unionfs.runtime import features

        print(json.dumps(features.document(), indent=2))
        return 0
    from unionfs.runtime import lifecycle, ocistate

    root = ocistate.Root(args.root or ocistate.default_root())
    if args.command == "create":
        if args.preserve_fds:
            raise UserError("--preserve-fds is not supported")
        lifecycle.create(root, args.id, args.bundle, args.pid_file, args.console_socket)
    elif args.command == "start":
        lifecycle.start(root, args.id)
    elif args.command == "state":
        print(json.dumps(ocistate.document(root.load(args.id)), indent=2))
    elif args.command == "kill":
        lifecycle.kill(root, args.id, parse_signal(args.signal), args.all)
    elif args.command == "delete":
        lifecycle.delete(root, args.id, args.force)
    elif args.command == "exec":
        return _exec(root, args)
    elif args.command == "ps":
        return _ps(root, args)
    elif args.command == "list":
        _list(root, args)
    return 0


def _exec(root: Root, args: argparse.Namespace) -> int:
    from unionfs.runtime import caps, oci, ociexec, spec

    if args.preserve_fds:
        raise UserError("--preserve-fds is not supported")
    if args.process is not None:
        try:
            with open(args.process, encoding="utf-8") as f:
                process = oci.parse_process(json.load(f))
        except (OSError, ValueError) as exc:
            raise UserError(f"--process {args.process}: {exc}") from None
        if args.tty:
            process = dataclasses.replace(process, terminal=True)
    else:
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not command:
            raise UserError("exec: give --process FILE or a command after the id")
        base = root.load_spec(args.id).process
        changes: dict[str, object] = {"args": tuple(command), "terminal": args.tty,
                                      "make_cwd": False}  # fmt: skip
        changes["env"] = spec.merge_env(base.env, spec.parse_env(args.env, os.environ))
        if args.cwd is not None:
            changes["cwd"] = spec.container_path(args.cwd, "--cwd")
        if args.user is not None:
            changes["uid"], changes["gid"] = spec.parse_user(args.user)
        if args.additional_gids:
            changes["groups"] = tuple(args.additional_gids)
        if args.no_new_privs:
            changes["no_new_privileges"] = True
        if args.cap and base.capabilities is not None:
            added = caps.numbers(args.cap, "--cap")
            c = base.capabilities

            def more(have: tuple[int, ...]) -> tuple[int, ...]:
                return tuple(sorted({*have, *added}))

            changes["capabilities"] = spec.Capabilities(
                more(c.bounding), more(c.effective), more(c.permitted), more(c.inheritable),
                c.ambient)  # fmt: skip
        process = dataclasses.replace(base, **changes)  # type: ignore[arg-type]
    options = ociexec.ExecOptions(args.detach, args.pid_file, args.console_socket)
    return ociexec.exec_process(root, args.id, process, options)


def _ps(root: Root, args: argparse.Namespace) -> int:
    from unionfs.runtime import cgroups, ocistate

    container = root.load(args.id)
    pids = set(cgroups.from_record(dict(container.cgroup)).procs())
    if container.pid is not None and ocistate.status(container) != "stopped":
        pids.add(container.pid)
    if args.format == "json":
        print(json.dumps(sorted(pids)))
        return 0
    import subprocess

    ps_args = args.ps_args[1:] if args.ps_args[:1] == ["--"] else args.ps_args
    out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True,
                         check=False)  # fmt: skip
    if out.returncode != 0:
        raise UserError(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    column = lines[0].split().index("PID") if "PID" in lines[0].split() else None
    if column is None:
        raise UserError("ps: its output has no PID column")
    print(lines[0])
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            print(line)
    return 0


def _list(root: Root, args: argparse.Namespace) -> None:
    from unionfs.runtime import ocistate

    docs = [ocistate.document(root.load(i)) for i in root.ids()]
    if args.quiet:
        print("".join(f"{d['id']}\n" for d in docs), end="")
    elif args.format == "json":
        print(json.dumps(docs))
    else:
        print("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER")
        for d in docs:
            print(f"{d['id']}\t{d['pid']}\t{d['status']}\t{d['bundle']}\t{d['created']}\t")


if __name__ == "__main__":  # python -m unionfs.cli.oci (a wrapper for a user's Python)
    sys.exit(main())
