"""unionfs: a union / copy-on-write filesystem in userspace, with overlayfs semantics.

Layering (each arrow an import; nothing imports upward, tests/test_layering.py enforces it):
``cli`` -> ``fuse`` -> ``union`` -> (``layerfmt``, ``safepath``, ``errors``). ``union`` holds
the overlay rules and imports neither pyfuse3 nor trio; ``fuse`` is the protocol edge and the
only package that raises ``pyfuse3.FUSEError``; ``safepath`` is the only place that touches
layer paths.
"""

__version__ = "0.1.0"
