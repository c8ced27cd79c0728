"""The one rule for secrets in what the gateway shows of its configuration (``GET
/admin/config``).

A value is masked, wherever it sits in the configuration (a setting, a route's ``params``, a
nested mapping of them):

- when its name says it is a secret: a word of the name (split at ``_``, ``-``, ``.`` and
  camel case) is key, secret, token, password, passwd, credential(s), authorization or
  cookie, or the name contains secret or password. Names ending in ``_env`` name an
  environment variable, not a secret, and are shown. Key hashes (``key_sha256``,
  ``admin_key_sha256``) are masked by this rule too: a hash of a short key can be guessed;
- when it is a URL with a user or password (``redis://:PASSWORD@host``): the userinfo is
  masked, the rest shown; so are query parameters whose names say secret.

Mappings and lists are walked, not masked whole (``auth.api_keys`` shows each tenant).
``null`` stays ``null``, so an unset secret shows as unset.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "**********"
"""What a masked value shows (pydantic's rendering of a ``SecretStr``)."""

SECRET_WORDS = frozenset(
    {"key", "keys", "secret", "secrets", "token", "password", "passwd", "pwd",
     "credential", "credentials", "authorization", "cookie"}
)  # fmt: skip
# "tokens" is left out: it names counts (max_tokens), never a credential.
_WORD_BREAK = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def is_secret_name(name: str) -> bool:
    """Whether a field or parameter called ``name`` holds a secret."""
    lowered = _CAMEL.sub("_", name).lower()
    if lowered.endswith("_env"):
        return False
    if "secret" in lowered or "password" in lowered:
        return True
    return any(word in SECRET_WORDS for word in _WORD_BREAK.split(lowered))


def mask_url(value: str) -> str:
    """``value`` with the userinfo and secret query parameters of a URL masked; any other
    string as it is."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if not parts.scheme or not parts.netloc:
        return value
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(is_secret_name(name) for name, _ in pairs):
            query = urlencode([(n, MASK if is_secret_name(n) else v) for n, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_secrets(value: Any, name: str = "") -> Any:
    """A copy of ``value`` (JSON-like: mappings, lists, scalars) with secrets masked."""
    if isinstance(value, dict):
        return {key: mask_secrets(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(item, name) for item in value]
    if value is None:
        return None
    if is_secret_name(name):
        return MASK
    if isinstance(value, str):
        return mask_url(value)
    return value
