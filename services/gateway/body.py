"""Reading a request body within a size bound, refusing a larger one before reading it.

A declared ``Content-Length`` over the bound is refused at once, without reading a byte of
the body; a chunked body (no length declared) is read only up to the bound. Either way the
body is never held whole in memory when it is too large, so an unauthenticated client cannot
make the gateway read 50 MB to find out that the signature is wrong.
"""

from __future__ import annotations

from fastapi import HTTPException, Request


def too_large(limit: int) -> HTTPException:
    return HTTPException(
        413,
        f"the body is larger than {limit} bytes, the most this route reads"
        " (SWITCHBOARD_WEBHOOK_MAX_BODY_BYTES)",
    )


async def read_bounded(request: Request, limit: int) -> bytes:
    """The whole body if it is at most ``limit`` bytes; 413 otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
