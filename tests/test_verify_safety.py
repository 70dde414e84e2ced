"""Untrusted model output: pathological answers return False, and one sympy cannot finish is killed at
the timeout. No assert measures the wall clock (it flakes on loaded cores): the pool's count of killed
comparisons says the timeout acted, and a thread joined with a generous bound catches a hang."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlreason.cli import main
from rlreason.verify import VerifierPool, _library_pool, extract_answer, is_correct, verify_batch
from rlreason.verify.symbolic import exponent_tower, too_complex

TIMEOUT = 1.0
# reach sympy and never finish: each costs one comparison killed at the timeout
UNFINISHABLE = (r"\boxed{10000000!}", r"\boxed{10^{10^{12}}}")


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
        *UNFINISHABLE,  # a two-level tower is allowed through, so 10^{10^{12}} times out too
        r"\boxed{\int_0^\infty e^{x^{x^x}} dx}",
        "\x00\x01\x02 \\boxed{\\\\\\}",
    ]


@pytest.fixture(scope="module")
def pool():
    with VerifierPool("math", timeout=TIMEOUT, workers=2) as p:
        yield p.start()


def run_in_thread(fn):
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(timeout=120)
    assert out, "the verifier did not return from a worker thread"
    return out[0]


@pytest.mark.parametrize("where", ["main thread", "worker thread"])
def test_each_adversarial_answer_is_false_within_the_timeout(pool, tmp_path, where):
    sentinel = tmp_path / "pwned"
    for text in adversarial(sentinel):
        killed = pool.timeouts
        call = lambda text=text: pool.verify([text], ["7"])  # noqa: E731
        assert (call() if where == "main thread" else run_in_thread(call)) == [False]
        if text in UNFINISHABLE:
            assert pool.timeouts - killed == 1, text  # stopped at the timeout, not left running
    assert not sentinel.exists()


def test_batch_of_adversarial_answers(pool, tmp_path):
    sentinel = tmp_path / "pwned"
    texts = [*adversarial(sentinel), r"\boxed{2}"]
    killed = pool.timeouts
    verdicts = run_in_thread(lambda: pool.verify(texts, ["7"] * (len(texts) - 1) + ["2"]))
    assert verdicts == [False] * (len(texts) - 1) + [True]
    assert pool.timeouts - killed == len(UNFINISHABLE)  # the rest of the batch went on around them
    assert not sentinel.exists()


def test_exponent_towers_are_refused_before_parsing():
    assert [exponent_tower(s) for s in ["7", "x^2+y^3", "2^{2^n}", "2^{2}^{2}", "9^{9^{9}}", "2^2^2^2"]] == [
        0,
        1,
        2,
        2,
        2,
        3,
    ]
    assert too_complex(r"9^{9^{9^{9}}}") and not too_complex(r"e^{x^2}")


def test_is_correct_from_a_worker_thread_has_a_hard_timeout():
    shared = _library_pool("math", TIMEOUT)  # the pool is_correct and verify_batch share
    killed = shared.timeouts
    assert run_in_thread(lambda: is_correct(r"\boxed{10000000!}", "1", timeout=TIMEOUT)) is False
    assert shared.timeouts - killed == 1
    assert verify_batch([r"\boxed{\frac{2}{4}}"], ["0.5"], timeout=TIMEOUT) == [True]


def test_plain_numbers_never_start_a_worker():
    with VerifierPool("math", timeout=TIMEOUT) as fresh:
        verdicts = fresh.verify(
            [r"\boxed{1,234}", r"\boxed{\frac{1}{2}}", "#### 025", r"\boxed{8}"], ["1234", "0.5", "25", "7"]
        )
        assert verdicts == [True, True, True, False]
        assert fresh.workers_alive == 0
        assert fresh.verify([r"\boxed{\sqrt{8}}"], [r"2\sqrt{2}"]) == [True] and fresh.workers_alive >= 1


def test_threads_sharing_a_pool_each_get_their_own_verdicts(pool):
    """Four threads at once, each with a different batch (one of them slow): no answer goes astray."""
    batches = [
        ([r"\boxed{\sqrt{8}}", r"\boxed{3}"], [r"2\sqrt{2}", "4"], [True, False]),
        ([r"\boxed{10000000!}", r"\boxed{x^2+2x+1}"], ["1", "(x+1)^2"], [False, True]),
        ([r"\boxed{\frac{\pi}{2}}", r"\boxed{x^3}"], [r"\pi/2", "x^2"], [True, False]),
        ([r"\boxed{0.5}"] * 3, [r"\frac{1}{2}"] * 3, [True] * 3),
    ]
    results: dict[int, list[bool]] = {}
    threads = [
        threading.Thread(target=lambda k=k, r=r, g=g: results.__setitem__(k, pool.verify(r, g)))
        for k, (r, g, _) in enumerate(batches)
    ]
    killed = pool.timeouts
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {k: expected for k, (_, _, expected) in enumerate(batches)}
    assert pool.timeouts - killed == 1  # the factorial, killed at the timeout; the rest answered


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200), st.text(max_size=30))
def test_fuzz_extract_never_raises(response, gold):
    for text in (response, "\\boxed{" + response, "<think>" + response + "</think>" + gold):
        out = extract_answer(text)
        assert out is None or (isinstance(out, str) and out.strip())
    # after </think> only the answer region counts: nothing from the thinking leaks out
    if "</think>" not in gold:
        out = extract_answer("<think>" + response + "</think>" + gold)
        assert out is None or out in gold


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(alphabet=st.sampled_from(list("0123456789+-*/^{}()\\fracsqrt.,$ xyz=<>!")), max_size=60),
    st.sampled_from(["1", "025", "\\frac{1}{2}", "x^2", "27.0", "#### 1,234"]),
)
def test_fuzz_is_correct_never_raises(answer, gold):
    assert type(is_correct("\\boxed{" + answer + "}", gold, timeout=TIMEOUT)) is bool


def test_verify_cli(tmp_path, capsys):
    preds = Path(__file__).parents[1] / "rlreason" / "examples" / "predictions.jsonl"
    out = tmp_path / "graded.jsonl"
    assert main(["verify", str(preds), "--out", str(out), "--timeout", "2"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy 70.0%  (14/20 correct" in printed
    assert len(out.read_text().splitlines()) == 20


def test_verify_cli_malformed_line_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"response": "\\\\boxed{1}", "gold": "1"}\n{"response": "x"\n')
    exe = Path(sys.executable).with_name("rlreason")  # the installed console script
    proc = subprocess.run([str(exe), "verify", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and f"{bad}:2: invalid JSON" in proc.stderr and "Traceback" not in proc.stderr
    bad.write_text('{"answer": "1"}\n')
    assert main(["verify", str(bad)]) == 2
    assert "p.jsonl:1: missing field 'response'" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nope.jsonl")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err


def test_verify_cli_subprocess_grades_the_shipped_example(tmp_path):
    preds = Path(__file__).parents[1] / "rlreason" / "examples" / "predictions.jsonl"
    out = tmp_path / "graded.jsonl"
    exe = Path(sys.executable).with_name("rlreason")
    proc = subprocess.run(
        [str(exe), "verify", str(preds), "--out", str(out), "--timeout", "2"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "accuracy 70.0%  (14/20 correct, 4 wrong, 2 without an answer" in proc.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows if not r["correct"]] == [11, 12, 13, 14, 15, 20]
