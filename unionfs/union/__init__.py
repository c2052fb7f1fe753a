"""Pure overlay rules over a stack of layer directories: no pyfuse3, no trio, no lmdb.

One concern per module, as the kernel's fs/overlayfs does it: ``stack`` (layers and resolved
entries), ``lookup`` (namei), ``readdir`` (merged listings).
"""
