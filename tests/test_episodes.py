"""Episode segmentation: spans partition the response, boundaries by hand, malformed markup degrades."""

from __future__ import annotations

import pytest
import torch

from rlreason.errors import ConfigError
from rlreason.policy.episodes import segment, segment_batch
from rlreason.policy.lab_tiny import build_lab_tokenizer

LAB = "<think>\n7*8=56\n4*8=32\n32+5=37\n</think>376<eos>"


@pytest.fixture(scope="module")
def byte_tok():
    """The lab byte tokenizer as is: `<think>` is 7 byte tokens (multi-token markup, as in real tokenizers)."""
    return build_lab_tokenizer()


@pytest.fixture(scope="module")
def ctl_tok():
    """The lab tokenizer with the control tokens as single special tokens (as after setup_control_tokens)."""
    tok = build_lab_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<short>", "<think>", "</think>"]})
    return tok


def ids_of(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def assert_partition(e, n: int) -> None:
    assert e.spans[0][0] == 0 and e.spans[-1][1] == n
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(e.spans, e.spans[1:]))
    assert len(e.boundaries) == len(e.spans) + 1


def test_lab_single_token_controls_by_hand(ctl_tok):
    ids = ids_of(ctl_tok, LAB)
    assert len(ids) == 29  # <think> \n | 7 + 7 + 8 chars | </think> 3 7 6 <eos>
    e = segment(ids, ctl_tok, "lab")
    # prefix 0 = <think> \n (control token included); the answer and EOS join the last episode
    assert e.boundaries == [2, 9, 16, 24]
    assert e.spans == [(0, 9), (9, 16), (16, 29)]
    assert e.format_ok and e.reasoning


def test_lab_multi_token_markup_maps_characters_back_to_tokens(byte_tok):
    ids = ids_of(byte_tok, LAB)
    assert len(ids) == 42  # '<think>' and '</think>' are 7 and 8 byte tokens
    e = segment(ids, byte_tok, "lab")
    assert e.boundaries == [8, 15, 22, 30]
    assert e.spans == [(0, 15), (15, 22), (22, 42)]
    assert_partition(e, len(ids))


def test_content_on_the_think_line_and_blank_lines(ctl_tok):
    ids = ids_of(ctl_tok, "<think>1+1=2\n\n2+2=4\n</think>4<eos>")
    e = segment(ids, ctl_tok, "lab")
    assert e.boundaries == [1, 7, 14]  # the blank line (token 7) joins the next episode
    assert e.spans == [(0, 7), (7, 17)] and e.reasoning


def test_short_answer_is_one_well_formed_episode_without_reasoning(ctl_tok):
    ids = ids_of(ctl_tok, "<short>376<eos>")
    e = segment(ids, ctl_tok, "lab")
    assert (e.spans, e.format_ok, e.reasoning) == ([(0, 5)], True, False)


@pytest.mark.parametrize(
    "text",
    [
        "<think>\n7*8=5",  # truncated: no </think>
        "<think>\n</think>5<eos>",  # empty reasoning
        "376<eos>",  # lab mode needs a control token
        "",  # empty response
    ],
)
def test_malformed_lab_degrades_to_one_episode(ctl_tok, text):
    ids = ids_of(ctl_tok, text)
    e = segment(ids, ctl_tok, "lab")
    assert (e.spans, e.format_ok, e.reasoning) == ([(0, len(ids))], False, False)


def test_lines_mode_without_markup_starts_at_token_zero(byte_tok):
    ids = ids_of(byte_tok, "a=1\n\nb=2\nso 3")
    e = segment(ids, byte_tok, "lines")
    assert e.boundaries == [0, 4, 9, 13]  # prefix 0 is empty: J(s_1) is the answer right after x
    assert_partition(e, len(ids))


def test_tags_mode(byte_tok):
    text = "ok <episode_1>a=1</episode_1>\n<episode_2>b=2</episode_2> \\boxed{3}"
    ids = ids_of(byte_tok, text)
    e = segment(ids, byte_tok, "tags")
    first, second = text.index("<episode_1>"), text.index("</episode_2>") + len("</episode_2>")
    assert e.boundaries == [first, text.index("<episode_2>") - 1, second]  # byte tokenizer: token = char
    assert e.format_ok and e.reasoning
    assert_partition(e, len(ids))


@pytest.mark.parametrize(
    "text",
    [
        "<episode_1>a</episode_1><episode_2>b",  # unclosed after a closed one
        "<episode_1>a",  # unclosed, nothing closed
        "<episode_1>a</episode_2>",  # mismatched numbers
    ],
)
def test_malformed_tags_degrade(byte_tok, text):
    ids = ids_of(byte_tok, text)
    e = segment(ids, byte_tok, "tags")
    assert (e.spans, e.format_ok) == ([(0, len(ids))], False)


def test_canonicalize_reads_mapped_control_tokens(byte_tok):
    """A model whose control tokens are mapped onto existing tokens ('@' for <think>, '#' for </think>)."""
    ids = ids_of(byte_tok, "@\n1\n2\n#5")
    e = segment(ids, byte_tok, "lab", lambda s: s.replace("@", "<think>").replace("#", "</think>"))
    assert e.boundaries == [2, 4, 6] and e.spans == [(0, 4), (4, 8)]


def test_segment_batch_drops_padding(ctl_tok):
    rows = [ids_of(ctl_tok, LAB), ids_of(ctl_tok, "<short>376<eos>")]
    ids = torch.full((2, 29), ctl_tok.pad_token_id)
    mask = torch.zeros(2, 29, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
    eps = segment_batch(ids, mask, ctl_tok, "lab")
    assert [e.spans for e in eps] == [[(0, 9), (9, 16), (16, 29)], [(0, 5)]]


def test_unknown_mode_is_a_config_error(byte_tok):
    with pytest.raises(ConfigError, match="episodes: expected one of lab, lines, tags"):
        segment([1, 2], byte_tok, "sentences")
