from layers import layer_factory  # noqa: F401 -- the ``layers`` fixture
