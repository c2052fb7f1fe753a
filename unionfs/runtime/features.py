"""The runtime-spec *features* document (``unionfs-runtime features``): what this runtime
implements, in the shape of runtime-spec's features.md (runc 1.1 prints the same kind).
Pure data, built from the tables the parsers themselves use, so that it cannot drift.
"""

from __future__ import annotations

from unionfs.runtime import caps, hooks, mountflags, seccomp, spec

OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = "1.0.2"


def document() -> dict[str, object]:
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(hooks.KINDS),
        "mountOptions": sorted(mountflags.option_words()),
        "linux": {
            "namespaces": sorted(spec.NAMESPACES),
            "capabilities": list(caps.NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {
                "enabled": True,
                "actions": list(seccomp.ACTIONS),
                "operators": list(seccomp.OPS),
                "archs": sorted(seccomp.ARCH_NAMES),
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.unionfs": "1"},
    }
