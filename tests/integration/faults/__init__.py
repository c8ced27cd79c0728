"""Faults under load, on real processes (issue 8).

Each test starts its own Redis Stack (a child process on a free port, so it can be stopped,
paused and resumed by its PID without touching the session's Redis) and its own ``vetcache
serve`` (cache on, bundled embedding model, a 200 ms lookup budget) in front of the shared
fake upstream, while a few clients send a bounded number of requests. For every fault:
no 5xx caused by the cache (the upstream answers when the cache cannot), nothing
half-written in the cache, no audit job lost, and the cache answers again afterwards.

Two faults this suite found are fixed and kept as tests: hits served right after a Redis
restart went unrecorded for feedback (stale pooled connections: clients now retry a broken
connection once), and a running audit worker never read again after Redis restarted
without its data (NOGROUP: the queue now creates its group again).

The rig: ``rig`` (the processes: a Redis server and a gateway), ``traffic`` (requests as
the client saw them, and load), ``checks`` (what Redis and the ledger hold afterwards), and
``conftest`` (fixtures that start the processes and end them). One test module per fault.
"""
