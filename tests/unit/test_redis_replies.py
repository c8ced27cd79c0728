"""Redis error replies recognized by their text: every wording seen, in one place."""

from __future__ import annotations

import pytest
from redis.exceptions import ResponseError

from cache.redis_replies import (
    is_group_exists,
    is_index_exists,
    is_missing_group,
    is_missing_index,
    is_missing_query_engine,
)


@pytest.mark.parametrize(
    "reply",
    [
        "Unknown index name",  # FT.INFO, RediSearch 2.10 (Redis Stack 7.4)
        "vetcache:v2:d384: no such index",  # FT.SEARCH, RediSearch 2.10
        "Unknown Index name",  # FT.DROPINDEX, RediSearch 2.10
        "Unknown: Index name",  # RediSearch 1.x / 2.0
        "idx: Index not found",
    ],
)
def test_every_missing_index_wording_is_recognized(reply: str) -> None:
    assert is_missing_index(ResponseError(reply))


@pytest.mark.parametrize(
    "reply",
    ["Index already exists", "unknown command 'FT.INFO'", "WRONGTYPE Operation against a key"],
)
def test_other_replies_are_not_a_missing_index(reply: str) -> None:
    assert not is_missing_index(ResponseError(reply))


def test_the_other_conditions() -> None:
    assert is_missing_query_engine(ResponseError("unknown command 'FT.INFO', with args"))
    assert is_index_exists(ResponseError("Index already exists"))
    assert is_missing_group(ResponseError("NOGROUP No such key 'vc:audit:jobs' or group"))
    assert is_group_exists(ResponseError("BUSYGROUP Consumer Group name already exists"))
    assert not is_missing_group(ResponseError("BUSYGROUP Consumer Group name already exists"))
