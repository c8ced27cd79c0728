"""What of a text an embedding model does not see, so that two prompts the model reads
differently never meet at similarity 1.0 on the semantic layer.

A sentence-transformers model reads at most its window of tokens (256 for the bundled model:
anything after is cut off, so a long prompt with an instruction appended embeds exactly as
the clean one), and reads every word its vocabulary cannot spell as one unknown token
(``[UNK]``: "I love 🍕" and "I love 🍣" are one vector). ``Window.unseen`` tells either,
cheaply enough for the event loop: plain ASCII text shorter than the window needs no
tokenizing (every ASCII character is a token of its own or part of one, checked when the
window is built), longer text is tokenized once, and a text with more words than the window
has tokens is too long without tokenizing it.
"""

from __future__ import annotations

import re
import string
from typing import Any

MAX_CHARS = 65_536
"""Texts longer than this are ``too_long`` without tokenizing (no model reads them whole)."""


class Window:
    """The window and vocabulary of one model's tokenizer."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        """``tokenizer``: a ``tokenizers.Tokenizer`` (a copy is kept, with no truncation or
        padding, so the embedding thread's own is never shared); ``max_tokens``: the model's
        window, special tokens included."""
        from tokenizers import Tokenizer

        plain = Tokenizer.from_str(tokenizer.to_str())
        plain.no_truncation()
        plain.no_padding()
        self._tokenizer = plain
        self.max_tokens = max_tokens
        unk = getattr(plain.model, "unk_token", None)
        self._unk: int | None = plain.token_to_id(unk) if isinstance(unk, str) else None
        self._specials = len(plain.encode("a").ids) - len(self._pieces("a"))
        longest = getattr(plain.model, "max_input_chars_per_word", None)
        self._long_word = re.compile(rf"[A-Za-z0-9]{{{int(longest) + 1},}}") if longest else None
        self._ascii_fast = all(not self._unknown(c) for c in string.printable[:94])

    def _pieces(self, text: str) -> list[int]:
        """Token ids of ``text``, no special tokens."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def _unknown(self, text: str) -> bool:
        return self._unk is not None and self._unk in self._pieces(text)

    def unseen(self, text: str) -> str | None:
        """``too_long`` (tokens past the window), ``unknown_text`` (a word read as the
        unknown token), or None: the model sees all of ``text``."""
        words = len(text.split(None, self.max_tokens))
        if len(text) > MAX_CHARS or words + self._specials > self.max_tokens:
            return "too_long"
        if (
            self._ascii_fast
            and text.isascii()
            and len(text) + self._specials <= self.max_tokens
            and (self._long_word is None or self._long_word.search(text) is None)
        ):
            return None
        ids = self._tokenizer.encode(text).ids
        if len(ids) > self.max_tokens:
            return "too_long"
        if self._unk is not None and self._unk in ids:
            return "unknown_text"
        return None
