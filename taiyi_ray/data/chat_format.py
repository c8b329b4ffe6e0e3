"""Chat formats as data: how a conversation becomes text, which token ends an answer, and the Jinja
template saved into every exported model so serving and evaluation build prompts exactly as training did.

A mismatched end token is the most common reason a fine-tuned model never stops, so the format is a
single object used at training (loss mask), export (chat_template + EOS), serving and evaluation.

- `taiyi`: Taiyi's plain format. Every turn's text is followed by <|endoftext|>, no role markers:
  `user<|endoftext|>answer<|endoftext|>user2<|endoftext|>answer2<|endoftext|>`.
- `chatml`: Qwen's ChatML. `<|im_start|>{role}\\n{content}<|im_end|>\\n` per turn; a generation prompt is
  `<|im_start|>assistant\\n`; an answer ends on <|im_end|> (the newline after it is not learned).

`render()` returns the text plus the character spans the loss covers: each assistant answer and the end
token that closes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from taiyi_ray.data.schema import Message

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
"""The three specials the Qwen2 tokenizer defines (ids 151643-151645); trained demo tokenizers get them too."""

ChatFormatName = Literal["taiyi", "chatml"]

_TAIYI_TEMPLATE = "{%- for message in messages -%}{{ message['content'] }}<|endoftext|>{%- endfor -%}"
_CHATML_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class ChatFormat:
    """A chat format: rendering, the answer-ending token, and its Jinja template."""

    name: ChatFormatName
    end_token: str
    chat_template: str

    def _turn(self, message: Message) -> tuple[str, str, str]:
        """(text before the content, the content, text after it) for one turn."""
        if self.name == "taiyi":
            return "", message.content, ENDOFTEXT
        return f"{IM_START}{message.role}\n", message.content, f"{IM_END}\n"

    def generation_prompt(self) -> str:
        """What follows the last user turn when asking the model for an answer."""
        return f"{IM_START}assistant\n" if self.name == "chatml" else ""

    def render(
        self, messages: Sequence[Message], add_generation_prompt: bool = False
    ) -> tuple[str, list[tuple[int, int]]]:
        """Text of the conversation and the [start, end) character spans of each assistant answer plus
        its end token (what the loss is computed on)."""
        pieces: list[str] = []
        answer_spans: list[tuple[int, int]] = []
        position = 0
        for message in messages:
            before, content, after = self._turn(message)
            pieces += [before, content, after]
            start = position + len(before)
            position = start + len(content) + len(after)
            if message.role == "assistant":
                answer_spans.append((start, start + len(content) + len(self.end_token)))
        if add_generation_prompt:
            pieces.append(self.generation_prompt())
        return "".join(pieces), answer_spans

    def prompt_text(self, messages: Sequence[Message]) -> str:
        """The text a model continues to answer `messages` (which end with a user turn)."""
        return self.render(messages, add_generation_prompt=True)[0]


CHAT_FORMATS: dict[str, ChatFormat] = {
    "taiyi": ChatFormat("taiyi", ENDOFTEXT, _TAIYI_TEMPLATE),
    "chatml": ChatFormat("chatml", IM_END, _CHATML_TEMPLATE),
}


def get_chat_format(name: str) -> ChatFormat:
    try:
        return CHAT_FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown chat format {name!r}; expected one of {sorted(CHAT_FORMATS)}") from None
