"""The LMDB index: which layer holds a path, and its attributes, in one read.

``codec`` (keys and values), ``env`` (the LMDB environment and its registry), ``views``
(``IndexedLayer``, ``IndexedLowers``: layers served from the index, implementing
``union.stack.Layer``), ``build`` (scanning, fingerprints, building), ``verify``.
The index imports ``union`` (its rules compute what the index stores), never the reverse.
"""
