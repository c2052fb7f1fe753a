"""The zygote (opt-in, UNIONFS_ZYGOTE=1): a resident process that imported the mount path
once and forks a worker per mount, so that a mount starts in a fork's time rather than an
interpreter's and its imports'. ``client`` is the ``unionfs`` program's first step (it
imports nothing else of unionfs); ``server`` is the zygote. Neither is used for anything
but a mount.
"""
