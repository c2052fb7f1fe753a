"""bench: times unionfs against kernel overlayfs, fuse-overlayfs and unionfs-fuse on the same
generated layer stacks in the same run, and reports ratios (absolute times drift here).

Layering: ``__main__`` -> ``runner`` -> (``systems``, ``stacks``, ``workloads``) and
``__main__`` -> (``report``, ``plots``, ``machine``, ``config``). ``stacks`` writes layers and
mounts nothing; ``systems`` mounts and knows no workload; ``workloads`` is data (shell
commands); ``runner`` times them; ``report`` and ``plots`` only read samples. Nothing here
imports ``unionfs``: it is run as a program (``python -m unionfs``), like every peer.
"""
