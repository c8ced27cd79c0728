"""Redis error replies recognized by their text.

Redis reports most conditions only as an error string (``ResponseError`` carries no code of
its own), and the wording differs between versions and commands. Every such match lives
here, each in one named function with the wordings it knows, so a new wording is added in
one place.
"""

from __future__ import annotations

from redis.exceptions import ResponseError


def _says(error: ResponseError, *wordings: str) -> bool:
    message = str(error).lower()
    return any(wording in message for wording in wordings)


def is_missing_query_engine(error: ResponseError) -> bool:
    """Redis has no search module: it answers ``unknown command 'FT.INFO'``."""
    return _says(error, "unknown command")


def is_missing_index(error: ResponseError) -> bool:
    """The search index does not exist. RediSearch 2.10 answers FT.INFO with ``Unknown index
    name``, FT.SEARCH with ``<name>: no such index`` and FT.DROPINDEX with ``Unknown Index
    name``; 1.x/2.0 said ``Unknown: Index name``; some builds ``index not found``."""
    return _says(
        error, "unknown index name", "unknown: index name", "no such index", "index not found"
    )


def is_index_exists(error: ResponseError) -> bool:
    """FT.CREATE lost a race with another replica: ``Index already exists``."""
    return _says(error, "index already exists", "already exists")


def is_missing_group(error: ResponseError) -> bool:
    """XREADGROUP / XAUTOCLAIM after Redis lost the stream (restarted without its data):
    ``NOGROUP No such key ... or consumer group ...``; the code word is the only signal."""
    return str(error).startswith("NOGROUP")


def is_group_exists(error: ResponseError) -> bool:
    """XGROUP CREATE when another process created the group first: ``BUSYGROUP Consumer
    Group name already exists``."""
    return str(error).startswith("BUSYGROUP")


def is_cluster_disabled(message: str) -> bool:
    """A cluster client pointed at a single server: redis-py's ``RedisClusterException`` says
    ``Cluster mode is not enabled on this node``."""
    return "cluster mode is not enabled" in message.lower()
