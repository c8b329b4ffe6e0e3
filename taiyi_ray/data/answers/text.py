"""Character-level rules of the answer format: escaping, splitting on unescaped separators, labels.

Kept apart from `format` (serialise and parse) so the rules that make the format round-trip sit in one
small place: a backslash makes the next character literal; `escape` puts one before every structural
character of the item kind (and before an item that would read as "None"), `unescape` removes them, and
the splitters ignore escaped characters. The parsers' character-level matching lives here too:
`answer_segment` (the text after an `Answer:`-like prefix), `match_names` (known names in free output,
longest first, whole words only).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

ESCAPE = "\\"
COLONS = ":："
ITEM_SEPARATORS = ";；"
PAIR_SEPARATORS = ",，"
PAIR_OPEN = "[【"
PAIR_CLOSE = "]】"
ENTITY_SPECIAL = ESCAPE + ITEM_SEPARATORS
PAIR_ITEM_SPECIAL = ESCAPE + ITEM_SEPARATORS + PAIR_SEPARATORS + PAIR_OPEN + PAIR_CLOSE
LABEL_SPECIAL = ESCAPE + ITEM_SEPARATORS
EVENT_BAR = "|｜"
ROUND_OPEN = "(（"
ROUND_CLOSE = ")）"
TRIGGER_SPECIAL = ESCAPE + EVENT_BAR
ROLE_SPECIAL = ESCAPE + ITEM_SEPARATORS + COLONS
NESTED_TYPE_SPECIAL = ESCAPE + ITEM_SEPARATORS + ROUND_OPEN

NONE_WORDS = frozenset(
    {"none", "无", "null", "nil", "n/a", "没有", "无实体", "无关系", "not found", "no entity", "no entities"}
)
_TRAILING_PUNCTUATION = ".。!！,，;；"
_BULLET = re.compile(r"^\s*(?:[-*•·>]+|\d+\s*[.)、．）])\s*")


def canonical_text(text: str) -> str:
    """The form an item is compared in: outer whitespace dropped and inner runs collapsed to one space.

    An answer line cannot carry a mention's outer spaces, and scorers compare mention texts, not spans.
    """
    return " ".join(text.split())


def is_none_word(raw: str) -> bool:
    """True for the words that mean "nothing" (None, 无, null...), ignoring case and a trailing full stop."""
    return raw.strip().rstrip(_TRAILING_PUNCTUATION).strip().casefold() in NONE_WORDS


def escape(text: str, special: str, guard_none: bool = True) -> str:
    """Backslash every character of `special` in `text`.

    With `guard_none`, an item that reads as a none-word ("None") gets a backslash too, so that it is
    not read as "nothing"; a label set that has `none` as a label of its own (HoC) needs no guard.
    """
    escaped = "".join(ESCAPE + character if character in special else character for character in text)
    return ESCAPE + escaped if guard_none and is_none_word(escaped) else escaped


def unescape(text: str) -> str:
    """Drop the backslash of every `\\x` pair (a lone trailing backslash stays)."""
    out: list[str] = []
    position = 0
    while position < len(text):
        character = text[position]
        if character == ESCAPE and position + 1 < len(text):
            out.append(text[position + 1])
            position += 2
            continue
        out.append(character)
        position += 1
    return "".join(out)


def split_unescaped(text: str, separators: str) -> list[str]:
    """Split on unescaped separator characters; pieces keep their escapes (unescape them afterwards)."""
    pieces: list[str] = []
    start = position = 0
    while position < len(text):
        character = text[position]
        if character == ESCAPE:
            position += 2
            continue
        if character in separators:
            pieces.append(text[start:position])
            start = position + 1
        position += 1
    pieces.append(text[start:])
    return pieces


def find_unescaped(text: str, characters: str, start: int = 0) -> int:
    """Index of the first unescaped character of `characters` at or after `start`, or -1."""
    position = start
    while position < len(text):
        if text[position] == ESCAPE:
            position += 2
            continue
        if text[position] in characters:
            return position
        position += 1
    return -1


def split_label(line: str) -> tuple[str, str] | None:
    """`"Chemical: a; b"` -> ("Chemical", "a; b"); None when the line has no colon (either width)."""
    position = find_unescaped(line, COLONS)
    if position < 0:
        return None
    return line[:position], line[position + 1 :]


def clean_label(label: str) -> str:
    """A type or label name as written, without bullets, markdown or quotes around it."""
    label = _BULLET.sub("", label)
    return canonical_text(label.strip().strip("*_#`'\"“”‘’「」《》").strip())


def label_key(label: str) -> str:
    """A type or label name as the parser matches it: `clean_label`, NFKC, case-folded."""
    return unicodedata.normalize("NFKC", clean_label(label)).casefold()


def name_lookup(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{label_key(name): value} for (name, value) pairs; the first pair wins on a clash."""
    lookup: dict[str, str] = {}
    for name, value in pairs:
        lookup.setdefault(label_key(name), value)
    return lookup


def strip_item(raw: str) -> str:
    """An item as written -> its canonical text (escapes removed, whitespace normalised)."""
    return canonical_text(unescape(raw.strip()))


def find_pairs(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The `[head, tail]` pairs of a relation line (raw, escapes kept), and problems met on the way.

    A pair opens at an unescaped `[`/`【` and closes at the next unescaped `]`/`】`; head and tail are
    split at the first unescaped comma of either width.
    """
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    position = find_unescaped(text, PAIR_OPEN)
    while position >= 0:
        end = find_unescaped(text, PAIR_CLOSE, position + 1)
        if end < 0:
            problems.append(f"unclosed pair {text[position : position + 40]!r}")
            break
        content = text[position + 1 : end]
        comma = find_unescaped(content, PAIR_SEPARATORS)
        if comma < 0:
            problems.append(f"pair without a comma between head and tail: {content!r}")
        else:
            pairs.append((content[:comma], content[comma + 1 :]))
        position = find_unescaped(text, PAIR_OPEN, end + 1)
    return pairs, problems


def write_argument(role: str, text: str, event_type: str, colon: str, brackets: str) -> str:
    """`Role: argument` of an event line: an entity's text with `;` escaped and a closing bracket at its
    very end too (it would read as a nested event), or a nested event `Type(trigger)` in `brackets`."""
    written = escape(role, ROLE_SPECIAL, guard_none=False) + colon
    if event_type:
        inner = escape(text, ENTITY_SPECIAL, guard_none=False)
        return (
            written
            + escape(event_type, NESTED_TYPE_SPECIAL, guard_none=False)
            + brackets[0]
            + inner
            + brackets[1]
        )
    escaped = escape(text, ENTITY_SPECIAL)
    return written + (
        escaped[:-1] + ESCAPE + escaped[-1] if escaped.endswith(tuple(ROUND_CLOSE)) else escaped
    )


def read_argument(raw: str) -> tuple[str, str]:
    """An event argument as written -> (text, nested event type): `Type(trigger)` with an unescaped
    opening bracket after a non-empty type and an unescaped closing one at the very end is a nested
    event (type "" for an entity's text)."""
    value = raw.strip()
    opening = find_unescaped(value, ROUND_OPEN)
    closing = find_unescaped(value, ROUND_CLOSE, opening + 1) if opening > 0 else -1
    while 0 <= closing < len(value) - 1:
        closing = find_unescaped(value, ROUND_CLOSE, closing + 1)
    if closing == len(value) - 1 and strip_item(value[:opening]):
        return strip_item(value[opening + 1 : closing]), strip_item(value[:opening])
    return strip_item(value), ""


def read_event(rest: str) -> tuple[str, list[tuple[str, str, str]], list[str]]:
    """`trigger | Role: argument; Role: argument` (a type line after its colon) -> the trigger, the
    arguments as (role, text, nested event type), and problems met on the way. Arguments without a
    role or text, and none-words (`Theme: None`), are left out."""
    bar = find_unescaped(rest, EVENT_BAR)
    arguments: list[tuple[str, str, str]] = []
    problems: list[str] = []
    for piece in split_unescaped(rest[bar + 1 :], ITEM_SEPARATORS) if bar >= 0 else []:
        colon = find_unescaped(piece, COLONS)
        if colon < 0:
            problems += [f"argument without a role: {piece.strip()[:40]!r}"] if piece.strip() else []
            continue
        role, (text, event_type) = strip_item(piece[:colon]), read_argument(piece[colon + 1 :])
        if role and (text or event_type) and not is_none_word(piece[colon + 1 :]):
            arguments.append((role, text, event_type))
    return strip_item(rest if bar < 0 else rest[:bar]), arguments, problems


# -- finding answers in free output -------------------------------------------------------------


def answer_segment(text: str, words: frozenset[str]) -> str:
    """The text after the first `Answer:`-like prefix (any line), or the whole text when there is none."""
    for index, line in enumerate(text.splitlines()):
        split = split_label(line)
        if split and label_key(split[0]) in words:
            rest = split[1].strip()
            return rest or "\n".join(text.splitlines()[index + 1 :])
    return text


def match_names(segment: str, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Known names found in `segment` (in text order, longest match first) and the leftover pieces."""
    folded = unicodedata.normalize("NFKC", segment).casefold()
    if len(folded) != len(segment):
        folded = segment.casefold()
    taken = [False] * len(folded)
    hits: list[tuple[int, str]] = []
    for name in sorted(names, key=len, reverse=True):
        needle = name.casefold()
        start = folded.find(needle)
        while needle and start >= 0:
            end = start + len(needle)
            if not any(taken[start:end]) and bounded(folded, start, end):
                taken[start:end] = [True] * (end - start)
                hits.append((start, name))
            start = folded.find(needle, start + 1)
    rest = "".join(" " if taken[index] else character for index, character in enumerate(segment))
    leftovers = [piece.strip(" .。\t") for piece in re.split(r"[;；,，、\n]", rest)]
    return [name for _, name in sorted(hits)], [piece for piece in leftovers if piece]


def bounded(text: str, start: int, end: int) -> bool:
    """An English name must not be part of a longer word ("none" in "nonetheless")."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    return not (before.isascii() and before.isalnum()) and not (after.isascii() and after.isalnum())
