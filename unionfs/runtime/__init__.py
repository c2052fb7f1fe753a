"""The container runtime: a process in its own namespaces and cgroups on a unionfs mount.

Layering, one way: ``spec`` (CLI flags -> a frozen ``RunSpec``; ``oci`` does the same from
config.json, with ``units``, ``caps`` and ``mountflags`` for values) -> ``plan`` (RunSpec ->
an immutable tuple of steps, pure data) -> ``executor`` (performs the steps through the
syscalls of ``namespaces``, in ``python -m unionfs.runtime.child``: a fresh exec, so one
thread). ``run`` (run and start) and ``enter`` (exec) drive a container from outside with
``helper`` (the channel to the child), ``cgroups`` (one ``Cgroup`` interface, v1 and v2;
``placement`` says where they go), ``rootfs`` (the mount), ``state`` (the per-container
directory; ``jsonvalues`` reads and writes its state.json and spec.json), ``reclaim``
(what a killed runtime left) and ``proxy`` (signals, waiting).
Nothing here imports pyfuse3, trio, lmdb or any part of unionfs but ``errors`` (the table
in ``unionfs.LAYERS``): the namespace helper must start single-threaded, so the filesystem
is mounted by running ``python -m unionfs mount`` as its own process.
"""
