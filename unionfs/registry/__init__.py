"""OCI distribution client: move images between a blob directory and a registry.

Layering inside the package: ``reference`` (parse ``host[:port]/repo[:tag|@digest]``),
``digest`` (verify what is received), ``manifest`` (media types, indexes, the blobs an image
needs), ``auth`` (credentials, challenges, bearer tokens), ``client`` (HTTP on httpx, one
registry), ``upload`` (blobs sent through a client), ``blobdir`` (an OCI image layout as
the local end), ``sources`` (which repositories hold a blob, for cross-repository
mounts), ``transfer`` (push and pull: send or fetch only what the other side lacks).
It imports nothing of unionfs but ``errors`` and ``imageformat`` (``unionfs.LAYERS``);
the store is reached through the ``transfer.ImageSource``/``ImageSink`` protocols.
"""
