"""``unionfs run``: run a command in a container on a unionfs mount of a rootfs or bundle.

Flags become a ``RunSpec`` (``unionfs.runtime.spec`` / ``oci``); ``unionfs.runtime.run``
does the rest. Without --rootfs or --bundle the first word is an IMAGE of the store: its
layers are the lowers, and its config gives the defaults for the command, environment,
working directory and user. ``create`` shares the flags and the image defaults
(``add_run_flags``, ``spec_for_image``); the spec is saved with the container, so that
``unionfs start`` can run an exited container again.
"""

from __future__ import annotations

import argparse
import os

from unionfs.errors import UserError
from unionfs.runtime import oci, spec
from unionfs.runtime import run as runtime
from unionfs.runtime.state import default_home


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="run a command in a new container",
        description="Run CMD in new PID, mount, UTS, IPC and network namespaces, on a "
        "unionfs mount with a fresh upper layer over --rootfs DIR (or an OCI bundle).",
    )
    add_run_flags(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--rootfs", metavar="DIR", help="a directory: the container's lower layer")
    where.add_argument("--bundle", "-b", metavar="DIR", help="an OCI bundle (config.json)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="IMAGE [CMD ARGS] | CMD ARGS")


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``run`` and ``create`` share (``create`` saves them for ``start``)."""
    p.add_argument("--name", help="a unique name for the container")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--hostname", help="the container's host name (default: its short id)")
    p.add_argument("--memory", "-m", help="memory limit, e.g. 64m (no swap beyond it)")
    p.add_argument("--cpus", help="CPU limit in CPUs, e.g. 0.5")
    p.add_argument("--pids", "--pids-limit", dest="pids", help="most processes at once")
    p.add_argument("--env", "-e", action="append", default=[], metavar="K=V")
    p.add_argument("--workdir", "-w", metavar="DIR", help="working directory in the container")
    p.add_argument("--user", "-u", metavar="UID[:GID]")
    p.add_argument("--volume", "-v", action="append", default=[], metavar="HOST:CDIR[:ro]")
    p.add_argument("--stop-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="SIGKILL the process this long after forwarding TERM/INT/HUP")  # fmt: skip
    add_stdio_flags(p)
    p.add_argument("--runtime", default="unionfs", metavar="NAME|PATH",
                   help="the OCI runtime that sets the container up on the union: unionfs "
                   "(default), runc, crun or a program's path")  # fmt: skip
    p.add_argument("--cap-add", action="append", default=[], metavar="CAP",
                   help="add a capability to docker's default set (ALL: every one)")  # fmt: skip
    p.add_argument("--cap-drop", action="append", default=[], metavar="CAP",
                   help="drop a capability (ALL: every one; --cap-add then adds back)")  # fmt: skip
    p.add_argument("--privileged", action="store_true",
                   help="all capabilities and devices, no seccomp, no masked paths")  # fmt: skip
    p.add_argument("--security-opt", action="append", default=[], metavar="OPT",
                   help="seccomp=unconfined|FILE.json, no-new-privileges[=false], "
                   "systempaths=unconfined")  # fmt: skip


def add_stdio_flags(p: argparse.ArgumentParser) -> None:
    """-i and -t, which ``exec`` takes too."""
    p.add_argument("-i", "--interactive", action="store_true",
                   help="keep stdin open (without it the process reads /dev/null)")  # fmt: skip
    p.add_argument("-t", "--tty", action="store_true",
                   help="a terminal (a pty of the container's own), relayed to yours")  # fmt: skip


_CLI_ONLY = ("hostname", "memory", "cpus", "pids", "workdir", "user")
CLI_LISTS = ("env", "volume", "cap_add", "cap_drop", "security_opt")


def build_spec(args: argparse.Namespace) -> spec.RunSpec:
    command = list(args.argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if args.bundle is not None:
        given = [f"--{k}" for k in _CLI_ONLY if getattr(args, k) is not None]
        given += [f"--{k.replace('_', '-')}" for k in CLI_LISTS if getattr(args, k)]
        given += ["--privileged"] * args.privileged + ["--tty"] * args.tty
        if given:
            raise UserError(f"with --bundle, {given[0]} goes into config.json")
        if command:
            raise UserError("with --bundle, the command comes from config.json (process.args)")
        # as runc run in the foreground: the process gets stdin (never a terminal of ours)
        return oci.load(args.bundle, args.name, args.rm, interactive=True)
    if args.rootfs is None:
        raise UserError("give IMAGE, --rootfs DIR or --bundle DIR, then the command")
    return _from_cli(args, args.rootfs, command, [])


def _from_cli(args: argparse.Namespace, rootfs: str, command: list[str],
              image_env: list[str]) -> spec.RunSpec:  # fmt: skip
    return spec.from_cli(
        rootfs=rootfs,
        command=command,
        host_env=os.environ,
        name=args.name,
        remove=args.rm,
        hostname=args.hostname,
        memory=args.memory,
        cpus=args.cpus,
        pids=args.pids,
        env=[*image_env, *args.env],
        workdir=args.workdir,
        user=args.user,
        volumes=args.volume,
        cap_add=args.cap_add,
        cap_drop=args.cap_drop,
        privileged=args.privileged,
        security_opt=args.security_opt,
        interactive=args.interactive,
        tty=args.tty,
    )


def image_spec(args: argparse.Namespace) -> tuple[spec.RunSpec, str, tuple[str, ...]]:
    """``unionfs run [opts] IMAGE [CMD...]``: the spec, the image digest and its layer dirs."""
    from unionfs.store import ImageStore

    command = list(args.argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UserError("give IMAGE, --rootfs DIR or --bundle DIR, then the command")
    ref, command = command[0], command[1:]
    with ImageStore(default_home()) as store:
        image = store.resolve(ref)
        lowers = tuple(store.lowers(image))
        config = store.config(image)
    found = spec_for_image(args, ref, command, config, lowers)
    if found is None:
        raise UserError(f"image {ref} has no default command: give one after its name")
    return found, image.digest, lowers


def spec_for_image(args: argparse.Namespace, ref: str, command: list[str],
                   config: dict[str, object],
                   lowers: tuple[str, ...]) -> spec.RunSpec | None:  # fmt: skip
    """The spec for IMAGE *ref* (its OCI *config*, its layer dirs *lowers*) and the flags in
    *args*: the image's Entrypoint + Cmd when *command* is empty, its Env under --env, its
    WorkingDir and User unless given. None when there is no command at all."""
    if not lowers:
        raise UserError(f"image {ref} has no layers")
    settings = config.get("config") or {}
    if not isinstance(settings, dict):
        settings = {}
    if not command:
        entry, cmd = settings.get("Entrypoint") or [], settings.get("Cmd") or []
        command = [str(a) for a in [*entry, *cmd]]
        if not command:
            return None
    if args.workdir is None and settings.get("WorkingDir"):
        args.workdir = str(settings["WorkingDir"])
    if args.user is None and settings.get("User"):
        args.user = str(settings["User"])
    env = [str(e) for e in settings.get("Env") or [] if "=" in str(e)]
    return _from_cli(args, lowers[0], command, env)


def check_runtime(name: str) -> str:
    """unionfs, or another OCI runtime that exists (found now, not after the mount)."""
    if name != "unionfs":
        from unionfs.runtime import delegate

        delegate.program_path(name)
    return name


def run(args: argparse.Namespace) -> int:
    name = check_runtime(args.runtime)
    if args.rootfs is None and args.bundle is None:
        run_spec, digest, lowers = image_spec(args)
        return runtime.run(run_spec, default_home(), args.stop_timeout, digest, lowers, name)
    return runtime.run(build_spec(args), default_home(), args.stop_timeout, runtime=name)
