"""TEMPORARY: ``layertar`` or a stand-in until it lands (removed then)."""
# mypy: ignore-errors
try:
    from unionfs.store import layertar
except ImportError:  # pragma: no cover
    from unionfs.store import _layertar_shim as layertar  # type: ignore[no-redef]

__all__ = ["layertar"]
