"""Sending blobs to a registry (OCI distribution spec): a cross-repository mount, an upload
session, and the upload itself (one PUT, or PATCH chunks then a PUT). It speaks through
a ``Client``'s requests (auth, errors) and reads the file it is given; it never decides
what to send (``transfer`` does).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import httpx

from unionfs.errors import UserError
from unionfs.registry.auth import RegistryError
from unionfs.registry.client import Client
from unionfs.registry.digest import CHUNK, short


def _file_chunks(
    path: str, start: int, length: int, progress: Callable[[int], None] | None
) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:
                raise UserError(f"{path} shrank while it was being sent")
            left -= len(data)
            if progress is not None:
                progress(len(data))
            yield data


def mount_blob(client: Client, repo: str, digest: str, from_repo: str) -> httpx.URL | None:
    """Ask the registry to link *digest* from *from_repo* into *repo* (no data moves).

    None when it did; otherwise the upload location it opened instead (a registry may
    answer a mount request with an ordinary upload session).
    """
    scopes = (*client.push_scope(repo), f"repository:{from_repo}:pull")
    what = f"mounting blob {short(digest)} from {from_repo} into {repo}"
    resp = client.send(
        "POST",
        f"/v2/{repo}/blobs/uploads/?mount={digest}&from={from_repo}",
        scopes,
        what=what,
    )
    if resp.status_code == 201:
        return None
    if resp.status_code == 202:
        return _location(client, resp, what)
    raise client.fail(resp, what)


def _location(client: Client, resp: httpx.Response, what: str) -> httpx.URL:
    location = resp.headers.get("Location")
    if not location:
        raise RegistryError(f"{what}: registry {client.registry} sent no upload location")
    return resp.url.join(location)


def start_upload(client: Client, repo: str) -> httpx.URL:
    what = f"starting an upload to {repo}"
    resp = client.send("POST", f"/v2/{repo}/blobs/uploads/", client.push_scope(repo), what=what)
    if resp.status_code != 202:
        raise client.fail(resp, what)
    return _location(client, resp, what)


def upload_blob(
    client: Client,
    repo: str,
    digest: str,
    path: str,
    size: int,
    *,
    location: httpx.URL | None = None,
    chunk_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Upload the file *path* as blob *digest*: one PUT, or PATCH chunks then a PUT
    when *chunk_size* is given and the blob is larger."""
    scopes = client.push_scope(repo)
    what = f"uploading blob {short(digest)} to {repo}"
    if location is None:
        location = start_upload(client, repo)
    offset = 0
    if chunk_size is not None and size > chunk_size:
        while offset < size:
            n = min(chunk_size, size - offset)
            start = offset
            resp = client.send(
                "PATCH",
                location,
                scopes,
                what=what,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(n),
                    "Content-Range": f"{start}-{start + n - 1}",
                },
                content=functools.partial(_file_chunks, path, start, n, progress),
            )
            if resp.status_code != 202:
                raise client.fail(resp, what)
            location = _location(client, resp, what)
            offset += n
    length = size - offset
    final = location.copy_merge_params({"digest": digest})
    resp = client.send(
        "PUT",
        final,
        scopes,
        what=what,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)},
        content=lambda: _file_chunks(path, offset, length, progress),
    )
    if resp.status_code not in (201, 204):
        raise client.fail(resp, what)
