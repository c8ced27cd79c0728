"""``vetcache prepare-embedder``: load the configured embedder (and the learned verifier, when
``cache.verifier`` is set) once. An ONNX backend exports the model on first use, so an image
build or an install step can pay that (~15 s) instead of the first start, and a read-only
container finds the export in place."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.commands.common import CONFIG_HELP, configure_logging, fail, load

if TYPE_CHECKING:
    from cache.embedder import Embedder
    from cache.settings import CacheSettings

NAME = "prepare-embedder"
HELP = "load the configured embedder and verifier (exporting them to ONNX if needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=CONFIG_HELP)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import time

    from cache import build_embedder
    from cache.errors import EmbedderError, VerifierError

    settings = load(args.config, auth={"enabled": False})  # only `cache:` matters here
    configure_logging("warning")
    embedder = build_embedder(settings.cache)
    started = time.perf_counter()
    try:
        asyncio.run(_open_and_close(embedder))
    except (EmbedderError, OSError) as exc:
        return fail(NAME, f"cannot prepare the embedder: {exc}")
    where = getattr(embedder, "directory", None)
    print(
        f"ok: {settings.cache.embedding_backend} embedder {embedder.fingerprint} ready in "
        f"{time.perf_counter() - started:.1f} s" + (f" (exports in {where})" if where else "")
    )
    try:
        _prepare_verifier(settings.cache)
    except (VerifierError, OSError) as exc:
        return fail(NAME, f"cannot prepare the verifier: {exc}")
    return 0


def _prepare_verifier(settings: CacheSettings) -> None:
    """Export (if not yet) and load the configured verifier; say which one is ready."""
    import time

    from cache.verifier_model import load_scorer

    verifier = settings.verifier
    if verifier is None:
        return
    started = time.perf_counter()
    where = Path(settings.onnx_dir) if settings.onnx_dir else None
    scorer = load_scorer(verifier.model, verifier.precision, where, verifier.threads)
    print(f"ok: verifier {scorer.fingerprint} ready in {time.perf_counter() - started:.1f} s")


async def _open_and_close(embedder: Embedder) -> None:
    await embedder.open()
    await embedder.close()
