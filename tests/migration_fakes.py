"""Fakes for embedding-version tests: a hash embedder per version, and a namespace filled
with entries the way the gateway admits them (keys from ``derive_key``)."""

from __future__ import annotations

import hashlib
import time
import uuid

import numpy as np

from cache.embedder import Embedder, HashEmbedder, Vector
from cache.errors import EmbedderError
from cache.keys import derive_key
from cache.schema import CacheEntry
from cache.stores.base import Store


class VersionEmbedder(HashEmbedder):
    """A ``HashEmbedder`` whose vectors and fingerprint depend on ``version``: two versions
    give the same text unrelated vectors, as two models would."""

    def __init__(self, version: str, dimension: int = 32, fails_on: str = "") -> None:
        super().__init__(dimension)
        self.fingerprint = f"hash:{dimension}:{version}"
        self.version = version
        self.fails_on = fails_on
        self.embedded = 0

    async def embed(self, text: str, deadline: float | None = None) -> Vector:
        if self.fails_on and self.fails_on in text:
            raise EmbedderError("embedding failed (simulated)")
        self.embedded += 1
        seed = int.from_bytes(hashlib.sha256(f"{self.version}|{text}".encode()).digest()[:8])
        vector = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
        return vector / np.linalg.norm(vector)


def question(i: int) -> str:
    return f"How do I do task number {i} in the app?"


async def fill(
    store: Store,
    embedder: Embedder,
    namespace: str,
    n: int,
    *,
    tenants: tuple[str, ...] = ("t",),
    ttl_s: int = 600,
) -> list[CacheEntry]:
    """``n`` entries in ``namespace`` made by ``embedder``, spread over ``tenants``."""
    entries = []
    for i in range(n):
        text = question(i)
        tenant = tenants[i % len(tenants)]
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        key = derive_key(body, tenant=tenant, namespace=namespace, embedder=embedder.fingerprint)
        entry = CacheEntry(
            id=uuid.uuid4().hex, scope=key.scope, exact=key.exact, namespace=namespace,
            tenant=tenant, model="m", text=text, response=f'{{"answer": {i}}}',
            embedder=embedder.fingerprint, base=key.base, prompt=key.prompt,
            created_at=time.time(),
        )  # fmt: skip
        await store.put(entry, await embedder.embed(text), ttl_s, None)
        entries.append(entry)
    return entries
