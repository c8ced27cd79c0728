"""Hostile input: the gateway refuses it with a 4xx in OpenAI's error shape and keeps serving.

Two halves. schemathesis generates requests (valid and invalid) from the gateway's own
``/openapi.json`` for the chat, feedback and admin routes and sends them in-process, auth on;
no answer may be a 5xx, and every 4xx must be ``{"error": {message, type, param, code}}``
(``test_fuzzing``). Then hand-made requests no schema describes: bodies over the limit on
every body route, nesting, broken UTF-8, enormous message lists and messages
(``test_bodies``); control characters, very long values and non-ASCII bytes in the headers
the gateway reads (``test_headers``); admin path and query values (``test_admin_inputs``).
Malformed cases that ``test_bad_requests.py`` already covers are not repeated here.

``rig`` holds the keys, the good request and the checks every module uses; ``conftest`` the
gateways they talk to.
"""
