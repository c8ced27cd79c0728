"""The semantic cache: request -> cache key, embedder, vector stores, thresholds.

Empty until the cache lands (issue 3); the package exists now so the import layout and
its dependency rule (``cache`` imports neither ``proxy`` nor ``audit``) hold from day one.
"""
