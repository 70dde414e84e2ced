"""Untrusted model output: pathological answers cost at most the timeout and return False."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlreason.cli import main
from rlreason.verify import VerifierPool, extract_answer, is_correct, verify_batch

TIMEOUT = 2.0
MARGIN = 2.5  # a killed worker is replaced lazily; this covers scheduling noise on 2 busy cores


def adversarial(sentinel: Path) -> list[str]:
    return [
        r"\boxed{9^{9^{9^{9^{9}}}}}",
        r"\boxed{" + "2^" * 30 + "2}",
        "1" * 1_000_000,
        "{" * 10_000 + "1" + "}" * 10_000,
        r"\boxed{" + "{" * 10_000 + "}" * 10_000 + "}",
        rf"\boxed{{__import__('os').system('touch {sentinel}')}}",
        rf"The answer is eval(\"open('{sentinel}', 'w')\")",
        r"\boxed{\frac{1}{0}}",
        r"\boxed{10000000!}",
        r"\boxed{\int_0^\infty e^{x^{x^x}} dx}",
        "\x00\x01\x02 \\boxed{\\\\\\}",
    ]


@pytest.fixture(scope="module")
def pool():
    with VerifierPool("math", timeout=TIMEOUT, workers=2) as p:
        yield p


def test_each_adversarial_answer_is_false_within_the_timeout(pool, tmp_path):
    sentinel = tmp_path / "pwned"
    for text in adversarial(sentinel):
        start = time.monotonic()
        assert pool.verify([text], ["7"]) == [False]
        assert time.monotonic() - start < TIMEOUT + MARGIN, text[:40]
    assert not sentinel.exists()


def test_batch_of_adversarial_answers(pool, tmp_path):
    sentinel = tmp_path / "pwned"
    texts = [*adversarial(sentinel), r"\boxed{2}"]
    start = time.monotonic()
    verdicts = pool.verify(texts, ["7"] * (len(texts) - 1) + ["2"])
    assert verdicts == [False] * (len(texts) - 1) + [True]
    # two workers run the slow ones side by side: bounded by the timeout per item, not hanging
    assert time.monotonic() - start < len(texts) * (TIMEOUT + MARGIN) / 2 + MARGIN
    assert not sentinel.exists()


def test_timeout_works_from_a_worker_thread():
    results: list[bool] = []
    start = time.monotonic()
    t = threading.Thread(target=lambda: results.append(is_correct(r"\boxed{9^{9^{9^{9^{9}}}}}", "1", timeout=TIMEOUT)))
    t.start()
    t.join(timeout=60)
    assert results == [False] and time.monotonic() - start < TIMEOUT + 2 * MARGIN
    assert verify_batch([r"\boxed{\frac{2}{4}}"], ["0.5"], timeout=TIMEOUT) == [True]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200), st.text(max_size=30))
def test_fuzz_extract_never_raises(response, gold):
    extract_answer(response)
    extract_answer("\\boxed{" + response)
    extract_answer("<think>" + response + "</think>" + gold)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(alphabet=st.sampled_from(list("0123456789+-*/^{}()\\fracsqrt.,$ xyz=<>")), max_size=60),
    st.sampled_from(["1", "025", "\\frac{1}{2}", "x^2", "27.0", "#### 1,234"]),
)
def test_fuzz_is_correct_never_raises(pool, answer, gold):
    assert pool.verify(["\\boxed{" + answer + "}"], [gold])[0] in (True, False)


def test_verify_cli(tmp_path, capsys):
    preds = Path(__file__).parents[1] / "rlreason" / "examples" / "predictions.jsonl"
    out = tmp_path / "graded.jsonl"
    assert main(["verify", str(preds), "--out", str(out), "--timeout", "2"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy 70.0%  (14/20 correct" in printed
    assert len(out.read_text().splitlines()) == 20


def test_verify_cli_malformed_line_names_file_and_line(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"response": "\\\\boxed{1}", "gold": "1"}\n{"response": "x"\n')
    proc = subprocess.run([sys.executable, "-m", "rlreason.cli", "verify", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and f"{bad}:2: invalid JSON" in proc.stderr and "Traceback" not in proc.stderr
    bad.write_text('{"answer": "1"}\n')
    assert main(["verify", str(bad)]) == 2
