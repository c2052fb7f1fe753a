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
import contextlib
import os
import sys

from unionfs.cli import imageconfig
from unionfs.cli.registrycli import add_registry_flags
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
    p.add_argument("-d", "--detach", action="store_true",
                   help="run in the background: print the id once the process runs; "
                   "`unionfs logs` shows its output")  # fmt: skip
    add_pull_flags(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--rootfs", metavar="DIR", help="a directory: the container's lower layer")
    where.add_argument("--bundle", "-b", metavar="DIR", help="an OCI bundle (config.json)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="IMAGE [CMD ARGS] | CMD ARGS")


def add_pull_flags(p: argparse.ArgumentParser) -> None:
    """``--pull`` and the registry's flags (``run`` and ``create``)."""
    p.add_argument("--pull", choices=("never", "missing", "lazy"), default="never",
                   help="an IMAGE not in the store: never (an error), missing (pull it), "
                   "lazy (pull --lazy: start before its data has arrived)")  # fmt: skip
    add_registry_flags(p)


def pull_if_missing(args: argparse.Namespace, ref: str, root: str | None = None) -> None:
    """``--pull missing|lazy``: pull *ref* into the store (*root*, else the default) unless
    it is there. The store is closed before the pull: one process opens its LMDB once."""
    from unionfs.store import ImageStore

    if getattr(args, "pull", "never") == "never":
        return
    with ImageStore(root or default_home()) as store:
        try:
            store.resolve(ref)
            return
        except UserError:
            pass
    _pull(args, ref, root)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``run`` and ``create`` share (``create`` saves them for ``start``)."""
    p.add_argument("--name", help="a unique name for the container")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--hostname", help="the container's host name (default: its short id)")
    p.add_argument("--memory", "-m", help="memory limit, e.g. 64m (no swap beyond it)")
    p.add_argument("--cpus", help="CPU limit in CPUs, e.g. 0.5")
    p.add_argument("--pids", "--pids-limit", dest="pids", help="most processes at once")
    p.add_argument("--env", "-e", action="append", default=[], metavar="K=V")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE",
                   help="K=V lines (# comments); -e wins over them")  # fmt: skip
    p.add_argument("--entrypoint", metavar="CMD|JSON",
                   help="replace the image's Entrypoint (and drop its Cmd); '' clears "
                   "it")  # fmt: skip
    p.add_argument("--read-only", action="store_true",
                   help="the root read-only (no tmpfs is added: give --tmpfs /tmp)")  # fmt: skip
    p.add_argument("--tmpfs", action="append", default=[], metavar="CDIR[:OPTS]",
                   help="a tmpfs there (rw,noexec,nosuid,nodev, size=..., mode=...)")  # fmt: skip
    p.add_argument("--workdir", "-w", metavar="DIR", help="working directory in the container")
    p.add_argument("--user", "-u", metavar="USER[:GROUP]",
                   help="a name or number, through the image's /etc/passwd and "
                   "/etc/group")  # fmt: skip
    p.add_argument("--volume", "-v", action="append", default=[],
                   metavar="HOSTDIR|NAME:CDIR[:ro]",
                   help="bind a host directory, or the named volume NAME (made if "
                   "missing; unionfs volume ls)")  # fmt: skip
    p.add_argument("--mount", action="append", default=[], metavar="type=TYPE,...",
                   help="type=bind,source=HOSTDIR,target=CDIR[,readonly]; type=tmpfs,"
                   "target=CDIR[,tmpfs-size=N][,tmpfs-mode=M]; type=volume,source=NAME,"
                   "target=CDIR[,readonly]")  # fmt: skip
    p.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                   help="a resource limit of the process, e.g. nofile=1024:2048 "
                   "(-1: unlimited)")  # fmt: skip
    p.add_argument("--label", "-l", action="append", default=[], metavar="K=V",
                   help="a label of the container (with the image's; ps --filter "
                   "label=)")  # fmt: skip
    p.add_argument("--init", action="store_true",
                   help="run catatonit as PID 1 (as podman): it forwards signals and "
                   "reaps orphans; the command runs as its child")  # fmt: skip
    p.add_argument("--init-path", metavar="PATH", help="the init program for --init "
                   "(default: catatonit, Debian's static build)")  # fmt: skip
    p.add_argument("--device", action="append", default=[], metavar="HOSTDEV[:CDEV][:rwm]",
                   help="bind the host's device node in and allow it in the device cgroup "
                   "(rootless: no device rules, as rootless podman)")  # fmt: skip
    p.add_argument("--log-opt", action="append", default=[], metavar="max-size=SIZE",
                   help="a detached container's log: max-size of each of its two files "
                   "(default 1m)")  # fmt: skip
    p.add_argument("--network", "--net", choices=("none", "host", "private"), default=None,
                   help="none: loopback only; host: the host's; private: a network of its "
                   "own connected by pasta (passt). Default: private with -p, else none "
                   "(podman's default is private; a pasta per container is not free)")  # fmt: skip
    p.add_argument("-p", "--publish", action="append", default=[],
                   metavar="[IP:]HOSTPORT:PORT[/tcp|udp]",
                   help="forward the host's port to the container's (through pasta)")  # fmt: skip
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


_CLI_ONLY = ("hostname", "memory", "cpus", "pids", "workdir", "user", "network", "entrypoint")
CLI_LISTS = ("env", "volume", "cap_add", "cap_drop", "security_opt", "publish", "env_file",
             "tmpfs", "mount", "ulimit", "label", "device")  # fmt: skip


def build_spec(args: argparse.Namespace) -> spec.RunSpec:
    command = list(args.argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if args.bundle is not None:
        given = [f"--{k}" for k in _CLI_ONLY if getattr(args, k) is not None]
        given += [f"--{k.replace('_', '-')}" for k in CLI_LISTS if getattr(args, k)]
        given += ["--privileged"] * args.privileged + ["--tty"] * args.tty
        given += ["--read-only"] * args.read_only + ["--init"] * args.init
        if given:
            raise UserError(f"with --bundle, {given[0]} goes into config.json")
        if command:
            raise UserError("with --bundle, the command comes from config.json (process.args)")
        # as runc run in the foreground: the process gets stdin (never a terminal of ours)
        return oci.load(args.bundle, args.name, args.rm, interactive=True)
    if args.rootfs is None:
        raise UserError("give IMAGE, --rootfs DIR or --bundle DIR, then the command")
    if args.entrypoint is not None:
        command = imageconfig.command({}, command, args.entrypoint)
    return _from_cli(args, (args.rootfs,), command, [], args.user)


def init_path(args: argparse.Namespace) -> str | None:
    """--init's program: --init-path, else catatonit (as podman), found now."""
    if not args.init:
        if args.init_path is not None:
            raise UserError("--init-path goes with --init", exit_code=2)
        return None
    import shutil

    found = args.init_path or shutil.which("catatonit") or "/usr/libexec/podman/catatonit"
    if not os.path.isfile(found) or not os.access(found, os.X_OK):
        raise UserError(f"--init: {found} is not a program: apt-get install catatonit, or "
                        "give --init-path")  # fmt: skip
    return os.path.abspath(found)


def _from_cli(args: argparse.Namespace, lowers: tuple[str, ...], command: list[str],
              image_env: list[str], user_text: str | None,
              image_labels: dict[str, str] | None = None) -> spec.RunSpec:  # fmt: skip
    from unionfs.containers.volumes import Volumes
    from unionfs.runtime import runflags

    user = imageconfig.resolve_user(user_text, lowers) if user_text else None
    labels = [*(image_labels or {}).items(), *(runflags.label(t) for t in args.label)]
    volume_dir = Volumes(default_home()).data_dir
    devices = [runflags.device(d) for d in args.device]
    return spec.from_cli(
        rootfs=lowers[0],
        command=command,
        host_env=os.environ,
        name=args.name,
        remove=args.rm,
        hostname=args.hostname,
        memory=args.memory,
        cpus=args.cpus,
        pids=args.pids,
        env=[*image_env, *imageconfig.env_file(args.env_file), *args.env],
        workdir=args.workdir,
        user=f"{user.uid}:{user.gid}" if user is not None else None,
        home=user.home if user is not None else None,
        groups=user.groups if user is not None else (),
        read_only=args.read_only,
        tmpfs=args.tmpfs,
        volumes=args.volume,
        cap_add=args.cap_add,
        cap_drop=args.cap_drop,
        privileged=args.privileged,
        security_opt=args.security_opt,
        interactive=args.interactive,
        tty=args.tty,
        network_mode=args.network,
        publish=args.publish,
        mounts=[*(runflags.given_mount(m, volume_dir) for m in args.mount),
                *(d.mount() for d in devices)],
        rlimits=[runflags.ulimit(u) for u in args.ulimit],
        labels=labels,
        init=init_path(args),
        device_rules=[d.rule() for d in devices],
        volume_dir=volume_dir,
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
    pull_if_missing(args, ref)
    with ImageStore(default_home()) as store:
        image = store.resolve(ref)
        lowers = tuple(store.lowers(image))
        config = store.config(image)
    found = spec_for_image(args, ref, command, config, lowers)
    if found is None:
        raise UserError(f"image {ref} has no default command: give one after its name")
    return found, image.digest, lowers


def _pull(args: argparse.Namespace, ref: str, root: str | None = None) -> None:
    """``run --pull missing|lazy``: pull *ref* as ``unionfs pull [--lazy]`` would (what it
    says goes to stderr: stdout is the container's)."""
    from unionfs.cli import pull

    ns = argparse.Namespace(source=ref, name=None, quiet=False, lazy=args.pull == "lazy",
                            tls_verify=args.tls_verify, authfile=args.authfile,
                            root=root)  # fmt: skip
    with contextlib.redirect_stdout(sys.stderr):
        pull.run(ns)


def spec_for_image(args: argparse.Namespace, ref: str, command: list[str],
                   config: dict[str, object],
                   lowers: tuple[str, ...]) -> spec.RunSpec | None:  # fmt: skip
    """The spec for IMAGE *ref* (its OCI *config*, its layer dirs *lowers*) and the flags in
    *args*, as podman applies them (``imageconfig``): Entrypoint + (*command* or Cmd), its
    Env under --env-file and --env, its WorkingDir and User unless given. None when there
    is no command at all."""
    if not lowers:
        raise UserError(f"image {ref} has no layers")
    settings = config.get("config") or {}
    if not isinstance(settings, dict):
        settings = {}
    command = imageconfig.command(settings, command, args.entrypoint)
    if not command:
        return None
    if args.workdir is None and settings.get("WorkingDir"):
        args.workdir = str(settings["WorkingDir"])
    user = args.user if args.user is not None else str(settings.get("User") or "") or None
    env = [str(e) for e in settings.get("Env") or [] if "=" in str(e)]
    labels = settings.get("Labels")
    labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
    return _from_cli(args, lowers, command, env, user, labels)


def log_limit(options: list[str]) -> int:
    """``--log-opt max-size=10m``: bytes; the default when not given."""
    from unionfs.runtime import ctrlog, units

    limit = ctrlog.DEFAULT_MAX
    for option in options:
        key, eq, value = option.partition("=")
        if key != "max-size" or not eq:
            raise UserError(f"--log-opt {option}: give max-size=SIZE (e.g. 10m)", exit_code=2)
        limit = units.parse_bytes(value, "--log-opt max-size")
    return limit


def check_runtime(name: str) -> str:
    """unionfs, or another OCI runtime that exists (found now, not after the mount)."""
    if name != "unionfs":
        from unionfs.runtime import delegate

        delegate.program_path(name)
    return name


def run(args: argparse.Namespace) -> int:
    name = check_runtime(args.runtime)
    home = default_home()
    limit = log_limit(args.log_opt)
    if args.rootfs is None and args.bundle is None:
        run_spec, digest, lowers = image_spec(args)
    else:
        run_spec, digest, lowers = build_spec(args), None, ()
    if not args.detach:
        return runtime.run(run_spec, home, args.stop_timeout, digest, lowers, name)
    if name != "unionfs":
        raise UserError(f"--runtime {name}: -d needs unionfs's own runtime", exit_code=2)
    from unionfs.runtime import detach

    print(detach.launch(lambda d: runtime.run(run_spec, home, args.stop_timeout, digest, lowers,
                                              detached=d), limit))  # fmt: skip
    return 0
