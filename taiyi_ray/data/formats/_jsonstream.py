"""Stream the items of a top-level JSON array (or the members of a top-level object) with line numbers.

CBLUE and PubMedQA ship one big pretty-printed JSON document per split. `json.load` would hold the
whole file and its parsed tree at once and, on a syntax error, say nothing about which record broke.
Here the text is decoded in chunks and each item is parsed on its own with `json.JSONDecoder.raw_decode`,
so memory stays at about one chunk plus one item, and every item carries the line it starts on.
An item that is not valid JSON ends the stream with an error item: the rest of the document cannot
be re-synchronised reliably, and the caller reports it (nothing is dropped silently).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

CHUNK_BYTES = 1 << 20
_WHITESPACE = re.compile(r"[ \t\n\r]*")


@dataclass(frozen=True)
class JsonItem:
    """An item of the top-level container: `key` for an object member, `index` (0-based) for both."""

    index: int
    line: int
    key: str | None
    value: Any
    raw: str
    error: str | None = None


class _Reader:
    """A growing text buffer over a binary handle, tracking the line number of the read position."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.buffer = ""
        self.position = 0
        self.line = 1
        self.eof = False

    def more(self) -> bool:
        """Append the next chunk; False at end of file. Consumed text is dropped first (bounded memory)."""
        if self.eof:
            return False
        chunk = self.handle.read(CHUNK_BYTES)
        self.eof = not chunk
        self.buffer = self.buffer[self.position :] + self.decoder.decode(chunk, final=self.eof)
        self.position = 0
        return True

    def advance(self, end: int) -> None:
        self.line += self.buffer.count("\n", self.position, end)
        self.position = end

    def skip_space(self) -> None:
        while True:
            match = _WHITESPACE.match(self.buffer, self.position)
            end = match.end() if match else self.position
            self.advance(end)
            if end < len(self.buffer) or not self.more():
                return

    def peek(self) -> str:
        self.skip_space()
        return self.buffer[self.position] if self.position < len(self.buffer) else ""

    def expect(self, characters: str) -> str:
        found = self.peek()
        if not found or found not in characters:
            shown = repr(found) if found else "end of file"
            raise json.JSONDecodeError(
                f"expected one of {characters!r}, got {shown}", self.buffer, self.position
            )
        self.advance(self.position + 1)
        return found

    def value(self) -> tuple[Any, str]:
        """Parse one JSON value at the position, reading more text while it is incomplete."""
        decoder = json.JSONDecoder()
        self.skip_space()
        while True:
            try:
                value, end = decoder.raw_decode(self.buffer, self.position)
            except json.JSONDecodeError:
                if self.more():
                    continue
                raise
            if end == len(self.buffer) and self.more():
                continue  # a number may continue in the next chunk: parse again with more text
            raw = self.buffer[self.position : end]
            self.advance(end)
            return value, raw


def iter_json_items(handle: IO[bytes]) -> Iterator[JsonItem]:
    """Yield the items of a top-level array, or the members of a top-level object, in file order."""
    reader = _Reader(handle)
    reader.more()
    index = 0
    line = reader.line
    try:
        opener = reader.expect("[{")
        closer = "]" if opener == "[" else "}"
        if reader.peek() == closer:
            reader.expect(closer)
            _expect_end(reader)
            return
        while True:
            key: str | None = None
            reader.skip_space()
            line = reader.line
            if opener == "{":
                key_value, _ = reader.value()
                if not isinstance(key_value, str):
                    raise json.JSONDecodeError("object keys must be strings", reader.buffer, reader.position)
                key = key_value
                reader.expect(":")
            value, raw = reader.value()
            yield JsonItem(index=index, line=line, key=key, value=value, raw=raw)
            index += 1
            if reader.expect("," + closer) == closer:
                break
        _expect_end(reader)
    except json.JSONDecodeError as error:
        at = reader.line
        if error.doc is reader.buffer and reader.position <= error.pos:
            at += reader.buffer.count("\n", reader.position, error.pos)
        message = f"not valid JSON at line {at}: {error.msg}; the rest of the file cannot be read"
        yield JsonItem(index=index, line=line, key=None, value=None, raw="", error=message)


def _expect_end(reader: _Reader) -> None:
    if reader.peek():
        raise json.JSONDecodeError("extra data after the top-level value", reader.buffer, reader.position)
