"""A streaming response that writes together the events that are ready together.

Starlette's ``StreamingResponse`` sends each piece its iterator yields as one ASGI message:
down the middleware stack, through h11, one socket write each. An upstream's chunks often
arrive several to a TCP read (a fast model, a fake, the end of an answer), and a 14-chunk
answer then cost 14 trips and 14 writes: measured here, the send path was ~20% of the
gateway's CPU on streams and the largest part of the direct lane's +2 ms over the upstream.

``EventStreamResponse`` reads the iterator in a task of its own and writes whatever has
accumulated each time that task waits: events that arrive together leave together, in one
message, and an event that arrives alone leaves as soon as the loop turns (no timer, no
added wait). Hand-written: sse-starlette and Starlette write piece by piece.
"""

from __future__ import annotations

import asyncio

from starlette.responses import StreamingResponse
from starlette.types import Send


class EventStreamResponse(StreamingResponse):
    """``StreamingResponse`` that coalesces the pieces ready at once (see the module)."""

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        pending: list[bytes] = []
        ready = asyncio.Event()
        finished = False

        async def produce() -> None:
            nonlocal finished
            try:
                async for piece in self.body_iterator:
                    pending.append(
                        piece.encode(self.charset) if isinstance(piece, str) else bytes(piece)
                    )
                    ready.set()
            finally:
                finished = True
                ready.set()

        producer = asyncio.create_task(produce())
        try:
            while not (finished and not pending):
                await ready.wait()
                ready.clear()
                if pending:
                    body = b"".join(pending)
                    pending.clear()
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            await producer  # its error, if the iterator failed
        finally:
            if not producer.done():
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
