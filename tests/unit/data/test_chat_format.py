"""Chat formats: our renderer equals the Jinja template saved into exported models, and the loss mask
covers exactly the answer tokens and the end token after each answer (checked token by token)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taiyi_ray.data.chat_format import IM_END, get_chat_format
from taiyi_ray.data.encode_samples import IGNORE_INDEX, label_mask, tokenize_conversations
from taiyi_ray.data.schema import Message
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer, save_tokenizer, train_bpe_tokenizer

CONVERSATION = [
    Message(role="user", content="Find the chemicals: 阿司匹林 (aspirin) caused gastric bleeding."),
    Message(role="assistant", content="Chemical: aspirin; 阿司匹林"),
    Message(role="user", content="And the diseases?"),
    Message(role="assistant", content="Disease: gastric bleeding"),
]


def test_qwen2_tokenizer_matches_golden_ids(qwen2, qwen2_tokenizer_dir: Path) -> None:
    golden = json.loads((qwen2_tokenizer_dir / "golden_tokens.json").read_text())
    assert len(golden) == 51
    for item in golden:
        assert qwen2(item["text"], add_special_tokens=False).input_ids == item["ids"], item["text"]


@pytest.mark.parametrize("name", ["taiyi", "chatml"])
def test_renderer_equals_saved_jinja_template(qwen2, name: str, tmp_path: Path) -> None:
    chat_format = get_chat_format(name)
    tokenizer = configure_tokenizer(qwen2, chat_format)
    reloaded = configure_tokenizer(load_tokenizer(save_tokenizer(tokenizer, tmp_path / "tok")), chat_format)
    messages = [message.model_dump() for message in CONVERSATION]
    assert reloaded.apply_chat_template(messages, tokenize=False) == chat_format.render(CONVERSATION)[0]
    prompt = reloaded.apply_chat_template(messages[:3], tokenize=False, add_generation_prompt=True)
    assert prompt == chat_format.prompt_text(CONVERSATION[:3])
    assert reloaded.eos_token == chat_format.end_token


def _segment_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def test_taiyi_mask_token_by_token(qwen2) -> None:
    tokenizer = configure_tokenizer(qwen2, get_chat_format("taiyi"))
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    ((input_ids, labels),) = tokenize_conversations(tokenizer, get_chat_format("taiyi"), [CONVERSATION])
    expected_ids, expected_labels = [], []
    for message in CONVERSATION:
        ids = [*_segment_ids(tokenizer, message.content), end]
        expected_ids += ids
        expected_labels += ids if message.role == "assistant" else [IGNORE_INDEX] * len(ids)
    assert input_ids.tolist() == expected_ids
    assert labels.tolist() == expected_labels


def test_chatml_mask_token_by_token(qwen2) -> None:
    tokenizer = configure_tokenizer(qwen2, get_chat_format("chatml"))
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    ((input_ids, labels),) = tokenize_conversations(tokenizer, get_chat_format("chatml"), [CONVERSATION])
    expected_ids, expected_labels = [], []
    for message in CONVERSATION:
        head = _segment_ids(tokenizer, f"<|im_start|>{message.role}\n")
        body = [*_segment_ids(tokenizer, message.content), im_end]
        tail = _segment_ids(tokenizer, "\n")
        expected_ids += head + body + tail
        learned = body if message.role == "assistant" else [IGNORE_INDEX] * len(body)
        expected_labels += [IGNORE_INDEX] * len(head) + learned + [IGNORE_INDEX] * len(tail)
    assert input_ids.tolist() == expected_ids
    assert labels.tolist() == expected_labels
    # what is learned is exactly: both answers, each followed by <|im_end|>
    assert tokenizer.decode([t for t in labels.tolist() if t != IGNORE_INDEX]) == (
        "Chemical: aspirin; 阿司匹林<|im_end|>Disease: gastric bleeding<|im_end|>"
    )


def test_label_mask_refuses_straddling_tokens() -> None:
    assert label_mask([(0, 3), (3, 6), (6, 9)], [(3, 9)]).tolist() == [False, True, True]
    with pytest.raises(ValueError, match="straddles"):
        label_mask([(0, 4), (4, 6)], [(3, 6)])


def test_trained_tokenizer_is_deterministic_and_has_the_specials() -> None:
    texts = ["aspirin causes gastric bleeding", "阿司匹林可引起胃出血", "Chemical: aspirin"] * 20
    first, second = train_bpe_tokenizer(texts, 400), train_bpe_tokenizer(texts, 400)
    assert first.get_vocab() == second.get_vocab()
    tokenizer = configure_tokenizer(first, get_chat_format("taiyi"))
    ids = tokenizer("aspirin<|endoftext|>", add_special_tokens=False).input_ids
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert tokenizer.decode(ids) == "aspirin<|endoftext|>"
