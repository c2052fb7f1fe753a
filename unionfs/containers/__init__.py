"""Containers on the store: the runtime's state dirs over the store's image layers.

``lifecycle`` (create a container over an image, mount and unmount its merged tree, diff,
commit its upper as a new image) and ``userstore`` (an ordinary user's store: commands run
in the user's namespace, files carry host ids). This package sits above both ``store``
(layers and images, which know no processes) and ``runtime`` (state dirs, mounts, user
namespaces, which know no images); only the CLI imports it.
"""
