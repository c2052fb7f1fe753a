"""Which verbs ``unionfs`` knows (``COMMANDS``; ``GROUPS``: podman's ``image ls``, ``container
prune``..., each a verb module under another name with defaults of its own), and what it
says about a word it does not know: the mount-program forms still mount
(``is_mount_program_call``); anything else is an unknown command with difflib's closest
verbs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    "stop": "stop",
    "restart": "restart",
    "wait": "wait",
    "logs": "logs",
    "attach": "attach",
    "top": "top",
    "cp": "cp",
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
    "load": "load",
    "create": "create",
    "diff": "diff",
    "commit": "commit",
    "export-layer": "exportlayer",
    "import-layer": "importlayer",
    "push": "push",
    "convert": "convert",
    "pull": "pull",
    "login": "login",
    "logout": "logout",
    "unshare": "unshare",
    "info": "info",
    "version": "version",
    "completion": "completion",
    "man": "man",
    "oci": "oci",
}


@dataclass(frozen=True, slots=True)
class Sub:
    """One verb of a group: the module that runs it, its other names, its defaults."""

    module: str
    aliases: tuple[str, ...] = ()
    defaults: dict[str, str] = field(default_factory=dict)


GROUPS: dict[str, tuple[str, dict[str, Sub]]] = {
    "image": ("manage images", {
        "ls": Sub("images", ("list",)),
        "rm": Sub("rmi", ("remove",)),
        "inspect": Sub("inspect", defaults={"type": "image"}),
        "history": Sub("history"),
        "import": Sub("importimage"),
        "load": Sub("load"),
        "save": Sub("save"),
        "pull": Sub("pull"),
        "push": Sub("push"),
        "tag": Sub("tag"),
        "convert": Sub("convert"),
        "prune": Sub("imageprune"),
    }),
    "container": ("manage containers", {
        "ls": Sub("ps", ("list", "ps")),
        "rm": Sub("rm", ("remove",)),
        "inspect": Sub("inspect", defaults={"type": "container"}),
        "create": Sub("create"),
        "run": Sub("run"),
        "start": Sub("start"),
        "stop": Sub("stop"),
        "restart": Sub("restart"),
        "wait": Sub("wait"),
        "logs": Sub("logs"),
        "attach": Sub("attach"),
        "top": Sub("top"),
        "cp": Sub("cp"),
        "exec": Sub("exec"),
        "kill": Sub("kill"),
        "diff": Sub("diff"),
        "commit": Sub("commit"),
        "mount": Sub("mount"),
        "umount": Sub("umount", ("unmount",)),
        "stats": Sub("stats"),
        "prune": Sub("containerprune"),
    }),
    "volume": ("manage named volumes", {
        "create": Sub("volume", defaults={"action": "create"}),
        "ls": Sub("volume", ("list",), defaults={"action": "ls"}),
        "inspect": Sub("volume", defaults={"action": "inspect"}),
        "rm": Sub("volume", ("remove",), defaults={"action": "rm"}),
        "prune": Sub("volume", defaults={"action": "prune"}),
    }),
    "system": ("manage the store", {
        "df": Sub("systemdf"),
        "prune": Sub("systemprune"),
        "info": Sub("info"),
    }),
}  # fmt: skip

GLOBAL_FLAGS = ("-h", "--help", "--version", "-V")


def known(word: str) -> bool:
    return word in COMMANDS or word in GROUPS or word == "help"


def is_mount_program_call(args: list[str]) -> bool:
    """True for the mount-program forms, whose first word is no verb: ``-o OPTS MNT``
    (fuse-overlayfs, podman: with ``-f``, ``-d``, ``--log`` too, in any order) and
    ``SOURCE MNT -o OPTS`` (mount(8), which gives MNT as an absolute path, and no ``-o``
    when there are no options). A first word that is a path (``unionfs /src /mnt``) also
    takes this way, so that the mount says what it lacks; ``build .`` does not."""
    for arg in args:
        if arg == "-o" or (arg.startswith("-o") and not arg.startswith("--")):
            return True
    words = [a for a in args if not a.startswith("-")]
    return bool(words) and ("/" in words[0] or (len(words) == 2 and words[1].startswith("/")))


def suggestions(word: str, choices: list[str]) -> list[str]:
    """The verbs *word* was most likely meant to be (difflib's ratio, and prefixes)."""
    import difflib  # only on this error path: the mount program's start-up stays short

    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    prefixed = [c for c in choices if len(word) >= 2 and c.startswith(word) and c not in close]
    return (close + prefixed)[:3]


def unknown(word: str, choices: list[str], where: str = "unionfs") -> UserError:
    """``unknown command 'stop2' (did you mean 'stop' or 'top'?); see unionfs --help``."""
    found = suggestions(word, choices)
    hint = ""
    if found:
        quoted = [f"'{c}'" for c in found]
        said = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        hint = f" (did you mean {said}?)"
    return UserError(f"unknown command '{word}'{hint}; see {where} --help", exit_code=2)


def all_verbs() -> list[str]:
    return sorted([*COMMANDS, *GROUPS, "help"])
