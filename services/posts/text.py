"""Post text rules: normalization, length, hashtags and mentions.

Pure functions on plain strings, so the rules are unit-tested without any
backend. Lengths count Unicode code points of the NFC form: "é" typed as
e + combining accent is one character, an emoji outside the BMP is one
character (a ZWJ family emoji is several, as on most platforms that count
code points).
"""

from __future__ import annotations

import re
import unicodedata

from services.kit.server.errors import invalid_argument

MAX_TEXT_CHARS = 280
MAX_HASHTAG_CHARS = 100

# Characters that render as nothing: a text made only of these and whitespace
# is as empty as an empty string.
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")

# Links are cut out before looking for tags, so "https://x.org/#top" or
# "https://medium.com/@someone" produce no hashtag or mention.
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)

# A mention is "@" + a username (1..15 of [A-Za-z0-9_]) not glued to a word
# before it (e-mail addresses) and not running on into more username chars.
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{1,15})(?![A-Za-z0-9_@])")


def normalize_text(raw: str) -> str:
    """Validates post text and returns its NFC form; INVALID_ARGUMENT on bad text."""
    text = unicodedata.normalize("NFC", raw)
    if _is_blank(text):
        raise invalid_argument("text", "must not be empty")
    if len(text) > MAX_TEXT_CHARS:
        raise invalid_argument("text", f"must be at most {MAX_TEXT_CHARS} characters, got {len(text)}")
    bad = _first_control_char(text)
    if bad is not None:
        raise invalid_argument("text", f"must not contain control characters, found U+{ord(bad):04X}")
    return text


def _is_blank(text: str) -> bool:
    return all(ch.isspace() or ch in _INVISIBLE for ch in text)


def _first_control_char(text: str) -> str | None:
    # Line breaks and tabs are ordinary text; other C0/C1 controls only break
    # clients and logs.
    for ch in text:
        if unicodedata.category(ch) == "Cc" and ch not in "\n\r\t":
            return ch
    return None


def _without_urls(text: str) -> str:
    return _URL.sub(" ", text)


def _is_tag_char(ch: str) -> bool:
    # Word characters plus combining marks, so tags in scripts that use
    # vowel signs (#हिन्दी) or marks NFC cannot compose stay whole.
    return ch.isalnum() or ch == "_" or unicodedata.category(ch) in ("Mn", "Mc")


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def extract_hashtags(text: str) -> list[str]:
    """Hashtags without '#', lower-cased, first occurrence order, no duplicates.

    A tag is '#' followed by word characters and not preceded by one ("a#b" is
    not a tag). Tags of digits only ("#1 fan") and tags longer than 100
    characters are not hashtags.
    """
    text = _without_urls(text)
    tags: list[str] = []
    seen: set[str] = set()
    i, n = 0, len(text)
    while i < n:
        if text[i] != "#" or (i > 0 and _is_tag_char(text[i - 1])):
            i += 1
            continue
        start = i + 1
        end = start
        # A tag starts with a word character, never with a combining mark.
        if end < n and _is_word_char(text[end]):
            while end < n and _is_tag_char(text[end]):
                end += 1
        body = text[start:end]
        i = max(end, i + 1)
        if not body or body.isdigit() or len(body) > MAX_HASHTAG_CHARS:
            continue
        tag = body.lower()
        if tag not in seen:
            seen.add(tag)
            tags.append(tag)
    return tags


def extract_mentions(text: str) -> list[str]:
    """Mentioned usernames without '@', lower-cased, first occurrence order, no duplicates."""
    mentions: list[str] = []
    seen: set[str] = set()
    for match in _MENTION.finditer(_without_urls(text)):
        name = match.group(1).lower()
        if name not in seen:
            seen.add(name)
            mentions.append(name)
    return mentions
