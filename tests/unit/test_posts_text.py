"""Post text rules: normalization, length counting, hashtags and mentions."""

from __future__ import annotations

import unicodedata

import grpc
import pytest

from services.kit.server.errors import ApiError
from services.posts.text import MAX_TEXT_CHARS, extract_hashtags, extract_mentions, normalize_text


def _rejected(text: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        normalize_text(text)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


# -- validation and counting ---------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "   \n\t ", "\u3000", "\u200b\u200b", " \ufeff "])
def test_empty_or_blank_text_is_rejected(text):
    assert _rejected(text).message == "text: must not be empty"


def test_281_ascii_characters_are_rejected_with_the_count():
    assert _rejected("x" * 281).message == "text: must be at most 280 characters, got 281"


def test_280_ascii_characters_are_accepted_unchanged():
    assert normalize_text("x" * 280) == "x" * 280


@pytest.mark.parametrize(
    "unit",
    ["🐦", "漢", "é", "\U0001f600", "ß"],
    ids=["bird-emoji", "cjk", "precomposed-e-acute", "astral-emoji", "sharp-s"],
)
def test_multibyte_characters_count_one_each(unit):
    text = unit * MAX_TEXT_CHARS
    assert len(text.encode("utf-8")) > MAX_TEXT_CHARS
    assert normalize_text(text) == text
    assert "got 281" in _rejected(unit * (MAX_TEXT_CHARS + 1)).message


def test_combining_marks_compose_before_counting():
    decomposed = "e\u0301" * MAX_TEXT_CHARS  # 560 code points as typed, 280 after NFC
    assert len(decomposed) == 2 * MAX_TEXT_CHARS
    normalized = normalize_text(decomposed)
    assert normalized == "é" * MAX_TEXT_CHARS
    assert unicodedata.is_normalized("NFC", normalized)


def test_marks_without_a_precomposed_form_still_count():
    # q + combining acute has no precomposed form: two code points each.
    assert "got 282" in _rejected("q\u0301" * 141).message
    assert len(normalize_text("q\u0301" * 140)) == 280


def test_zwj_emoji_sequences_count_their_code_points():
    family = "👨\u200d👩\u200d👧"  # 5 code points
    assert len(normalize_text(family * 56)) == 280
    assert "got 285" in _rejected(family * 57).message


def test_control_characters_are_rejected_but_line_breaks_are_fine():
    assert "U+0000" in _rejected("hello\x00world").message
    assert normalize_text("line one\nline two\tand\r\n") == "line one\nline two\tand\r\n"


def test_surrounding_whitespace_is_kept_and_counted():
    assert normalize_text("  hi  ") == "  hi  "
    assert "got 281" in _rejected(" " + "x" * 280).message


# -- hashtags ---------------------------------------------------------------------


def test_hashtags_lower_cased_deduplicated_in_order():
    assert extract_hashtags("#Python and #rust, then #PYTHON again #Go") == ["python", "rust", "go"]


def test_hashtag_stops_at_punctuation_and_emoji():
    assert extract_hashtags("love #summer! #beach🏖️ #sun.") == ["summer", "beach", "sun"]


def test_hashtag_needs_a_non_word_character_before_it():
    assert extract_hashtags("a#b c#d #e") == ["e"]
    assert extract_hashtags("#start of text") == ["start"]
    assert extract_hashtags("(#paren) [#bracket]") == ["paren", "bracket"]


def test_unicode_hashtags():
    assert extract_hashtags("#日本語 と #Café und #naïve") == ["日本語", "café", "naïve"]
    assert extract_hashtags("#Ελλάδα") == ["ελλάδα"]


def test_hashtag_keeps_combining_marks_inside_it():
    # Devanagari vowel signs are combining marks, not \w characters.
    assert extract_hashtags("#हिन्दी है") == ["हिन्दी"]


def test_hashtag_with_underscores_and_digits():
    assert extract_hashtags("#web_dev #2024goals #covid19") == ["web_dev", "2024goals", "covid19"]


def test_digits_only_and_bare_hash_are_not_hashtags():
    assert extract_hashtags("we are #1 # ## #_ok") == ["_ok"]


def test_hashtag_longer_than_100_characters_is_ignored():
    assert extract_hashtags("#" + "a" * 100) == ["a" * 100]
    assert extract_hashtags("#" + "a" * 101 + " #short") == ["short"]


def test_url_fragments_are_not_hashtags():
    text = "read https://example.com/docs#install and www.example.org/#/home then #real"
    assert extract_hashtags(text) == ["real"]
    assert extract_hashtags("HTTP://EXAMPLE.COM/#Top") == []


def test_html_entity_like_text_is_not_a_hashtag():
    assert extract_hashtags("fish &#38; chips") == []


# -- mentions ---------------------------------------------------------------------


def test_mentions_lower_cased_deduplicated_in_order():
    assert extract_mentions("@Alice meet @bob_99 and @ALICE") == ["alice", "bob_99"]


def test_email_addresses_are_not_mentions():
    assert extract_mentions("write to bob@example.com or @carol") == ["carol"]
    assert extract_mentions("me@x.io") == []


def test_mention_ends_at_the_first_non_username_character():
    assert extract_mentions("hi @dave! (@erin) @frank's, @gina.") == ["dave", "erin", "frank", "gina"]
    assert extract_mentions("@太郎 @kenさん") == ["ken"]


def test_mention_longer_than_15_characters_is_not_a_mention():
    assert extract_mentions("@" + "a" * 15) == ["a" * 15]
    assert extract_mentions("@" + "a" * 16) == []


def test_mention_needs_a_non_word_character_before_it():
    assert extract_mentions("x@y @@z") == []
    assert extract_mentions("cc:@ok") == ["ok"]


def test_bare_at_sign_is_not_a_mention():
    assert extract_mentions("meet @ noon @") == []


def test_urls_with_at_paths_are_not_mentions():
    assert extract_mentions("see https://medium.com/@writer and @reader") == ["reader"]


def test_parsing_works_on_the_normalized_text():
    text = normalize_text("#Cafe\u0301 with @Zoe")
    assert extract_hashtags(text) == ["café"]
    assert extract_mentions(text) == ["zoe"]
