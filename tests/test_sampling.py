"""SamplingParams validation and the numpy Sampler (greedy, seeds, top-k, top-p, min-p, repetition penalty)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from nomoat.errors import InvalidOptionError
from nomoat.sampler import Sampler, apply_repetition_penalty, min_p_keep, ranked, softmax, top_p_count
from nomoat.sampling import SamplingParams

# ---------------------------------------------------------------------------------------------
# SamplingParams
# ---------------------------------------------------------------------------------------------

INVALID = [
    ("temperature", -0.1),
    ("temperature", -1),
    ("temperature", math.nan),
    ("temperature", math.inf),
    ("temperature", True),
    ("temperature", "0.5"),
    ("temperature", None),
    ("top_k", -1),
    ("top_k", 2.0),
    ("top_k", True),
    ("top_k", "3"),
    ("top_p", 0),
    ("top_p", 0.0),
    ("top_p", 1.01),
    ("top_p", 2),
    ("top_p", -0.5),
    ("top_p", math.nan),
    ("min_p", 1),
    ("min_p", 1.0),
    ("min_p", -0.1),
    ("min_p", math.inf),
    ("repetition_penalty", 0),
    ("repetition_penalty", -1.0),
    ("repetition_penalty", math.nan),
    ("seed", -1),
    ("seed", 1.5),
    ("seed", True),
    ("seed", "42"),
    ("max_tokens", 0),
    ("max_tokens", -5),
    ("max_tokens", 10.0),
    ("stop", ""),
    ("stop", ["ok", ""]),
    ("stop", [1]),
    ("stop", ["ok", None]),
    ("stop", 3),
    ("stop", None),
    ("stop", b"END"),
]


@pytest.mark.parametrize(("option", "value"), INVALID, ids=[f"{o}={v!r}" for o, v in INVALID])
def test_invalid_option_raises_naming_it(option, value):
    with pytest.raises(InvalidOptionError, match=rf"^{option} ") as info:
        SamplingParams(**{option: value})
    assert isinstance(info.value, ValueError)


def test_invalid_option_error_is_a_value_error():
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)


def test_defaults_are_valid_and_greedy():
    p = SamplingParams()
    assert p.greedy
    assert (p.temperature, p.top_k, p.top_p, p.min_p, p.repetition_penalty) == (0.0, 0, 1.0, 0.0, 1.0)
    # no max_tokens by default: the Prompt API has none, an answer runs to its end of turn or the context window
    assert p.seed is None and p.max_tokens is None and p.stop == ()


@pytest.mark.parametrize("kwargs", [
    {"temperature": 0}, {"temperature": 1e-6}, {"temperature": 5}, {"top_k": 0}, {"top_k": 1},
    {"top_p": 1}, {"top_p": 1e-9}, {"min_p": 0}, {"min_p": 0.999}, {"repetition_penalty": 1e-3},
    {"repetition_penalty": 3}, {"seed": 0}, {"seed": 2**40}, {"seed": None}, {"max_tokens": 1},
    {"stop": []}, {"stop": ("a", "bc")},
])
def test_boundary_values_are_accepted(kwargs):
    p = SamplingParams(**kwargs)
    for k, v in kwargs.items():
        assert getattr(p, k) == (tuple(v) if k == "stop" else v)


def test_stop_is_normalised_to_a_tuple():
    assert SamplingParams(stop="END").stop == ("END",)
    assert SamplingParams(stop=["a", "b"]).stop == ("a", "b")


def test_greedy_only_at_temperature_zero():
    assert SamplingParams(temperature=0).greedy
    assert not SamplingParams(temperature=0.01).greedy


def test_params_are_frozen():
    p = SamplingParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.temperature = 1.0  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Processors, checked by hand
# ---------------------------------------------------------------------------------------------

PROBS = np.array([0.5, 0.3, 0.15, 0.05])


def test_repetition_penalty_hand_checked():
    logits = np.array([2.0, -1.0, 0.5, 3.0, 0.0], np.float32)
    out = apply_repetition_penalty(logits, [0, 1, 1, 4], 2.0)
    # seen: 0 (positive: /2), 1 (negative: *2, once despite repeats), 4 (zero stays zero); unseen unchanged
    np.testing.assert_allclose(out, [1.0, -2.0, 0.5, 3.0, 0.0])
    np.testing.assert_array_equal(logits, [2.0, -1.0, 0.5, 3.0, 0.0])  # input untouched


def test_repetition_penalty_below_one_boosts():
    out = apply_repetition_penalty(np.array([2.0, -1.0, 1.0]), [0, 1], 0.5)
    np.testing.assert_allclose(out, [4.0, -0.5, 1.0])


def test_repetition_penalty_off():
    logits = np.array([1.0, -1.0])
    np.testing.assert_array_equal(apply_repetition_penalty(logits, [0, 1], 1.0), logits)
    np.testing.assert_array_equal(apply_repetition_penalty(logits, [], 3.0), logits)


def test_ranked_is_highest_first_ties_by_id_and_keeps_k():
    x = np.array([1.0, 5.0, 3.0, 5.0, 2.0], np.float32)
    assert ranked(x, 0).tolist() == [1, 3, 2, 4, 0]  # 0 = every token
    assert ranked(x, 2).tolist() == [1, 3]
    assert ranked(x, 1).tolist() == [1]  # a tie at the cut: the lower id
    assert ranked(np.zeros(6, np.float32), 3).tolist() == [0, 1, 2]


@pytest.mark.parametrize(("p", "kept"), [(0.01, 1), (0.5, 1), (0.51, 2), (0.7, 2), (0.81, 3), (0.96, 4), (1.0, 4)])
def test_top_p_keeps_smallest_prefix_reaching_p(p, kept):
    assert top_p_count(PROBS, p) == kept


@pytest.mark.parametrize(("min_p", "kept"), [(0.05, [0, 1, 2, 3]), (0.2, [0, 1, 2]), (0.5, [0, 1]), (0.61, [0])])
def test_min_p_drops_tokens_below_min_p_times_max(min_p, kept):
    assert np.flatnonzero(min_p_keep(PROBS, min_p)).tolist() == kept


# ---------------------------------------------------------------------------------------------
# Sampler
# ---------------------------------------------------------------------------------------------


def draws(params: SamplingParams, logits, n: int, seen=()) -> np.ndarray:
    sample = Sampler(params)
    return np.array([sample(logits, list(seen)) for _ in range(n)])


def test_greedy_is_argmax():
    rng = np.random.default_rng(0)
    sample = Sampler(SamplingParams(temperature=0))
    for _ in range(200):
        logits = rng.normal(size=97).astype(np.float32)
        assert sample(logits, []) == int(np.argmax(logits))


def test_greedy_ignores_seed():
    logits = np.array([0.1, 0.9, 0.3])
    assert {Sampler(SamplingParams(seed=s))(logits, []) for s in range(20)} == {1}


def test_same_seed_same_draws():
    logits = np.random.default_rng(1).normal(size=50)
    p = SamplingParams(temperature=1.0, seed=1234)
    a, b = draws(p, logits, 300), draws(p, logits, 300)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) > 10  # really sampling, not stuck on one token


def test_different_seeds_differ():
    logits = np.zeros(50)
    a = draws(SamplingParams(temperature=1.0, seed=1), logits, 300)
    b = draws(SamplingParams(temperature=1.0, seed=2), logits, 300)
    assert (a != b).sum() > 200  # uniform over 50 tokens: ~98% of positions differ


def test_no_seed_gives_fresh_entropy():
    logits = np.zeros(50)
    a = draws(SamplingParams(temperature=1.0), logits, 100)
    b = draws(SamplingParams(temperature=1.0), logits, 100)
    assert not np.array_equal(a, b)


def test_top_k_1_is_argmax_even_when_hot():
    rng = np.random.default_rng(2)
    sample = Sampler(SamplingParams(temperature=100.0, top_k=1, seed=3))
    for _ in range(300):
        logits = rng.normal(size=40)
        assert sample(logits, []) == int(np.argmax(logits))


def test_top_k_never_leaves_the_k_largest():
    logits = np.random.default_rng(4).normal(size=60)
    top5 = set(np.argsort(-logits)[:5].tolist())
    got = set(draws(SamplingParams(temperature=3.0, top_k=5, seed=5), logits, 3000).tolist())
    assert got == top5  # never outside, and every one of the five is reachable


def test_top_p_draws_only_the_nucleus():
    logits = np.log(PROBS)
    d = draws(SamplingParams(temperature=1.0, top_p=0.7, seed=6), logits, 5000)
    assert set(d.tolist()) == {0, 1}
    assert abs((d == 0).mean() - 0.5 / 0.8) < 0.03


def test_top_p_applies_after_temperature():
    logits = np.log(PROBS)
    d = draws(SamplingParams(temperature=10.0, top_p=0.7, seed=7), logits, 3000)
    assert {2, 3} & set(d.tolist())  # flattened by temperature first, so the nucleus grows


def test_min_p_drops_unlikely_tokens():
    logits = np.log(PROBS)
    d = draws(SamplingParams(temperature=1.0, min_p=0.2, seed=8), logits, 5000)
    assert set(d.tolist()) == {0, 1, 2}  # 0.05 < 0.2 * 0.5
    d = draws(SamplingParams(temperature=1.0, min_p=0.5, seed=9), logits, 3000)
    assert set(d.tolist()) == {0, 1}  # 0.15 < 0.5 * 0.5


def test_repetition_penalty_flips_a_greedy_choice():
    logits = np.array([3.0, 2.0, -5.0], np.float32)
    assert Sampler(SamplingParams())(logits, [0]) == 0
    assert Sampler(SamplingParams(repetition_penalty=2.0))(logits, [0]) == 1  # 3/2 < 2
    assert Sampler(SamplingParams(repetition_penalty=2.0))(logits, [1]) == 0  # 2/2 < 3
    neg = np.array([-1.0, -1.5], np.float32)
    assert Sampler(SamplingParams(repetition_penalty=2.0))(neg, [0]) == 1  # -1*2 < -1.5


def test_repetition_penalty_applies_before_sampling():
    logits = np.log(np.array([0.5, 0.5]))
    d = draws(SamplingParams(temperature=1.0, repetition_penalty=3.0, seed=10), logits, 4000, seen=[0])
    # log(0.5) < 0 is multiplied by 3 for token 0: p0 = 0.5**3 / (0.5**3 + 0.5) = 0.2
    assert abs((d == 0).mean() - 0.2) < 0.03


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_empirical_frequencies_match_softmax(temperature):
    logits = np.array([1.0, 0.5, 0.0, -1.0, 2.0, 0.2], np.float32)
    n = 20_000
    d = draws(SamplingParams(temperature=temperature, seed=11), logits, n)
    freq = np.bincount(d, minlength=logits.size) / n
    expected = softmax(logits.astype(np.float64) / temperature)
    np.testing.assert_allclose(freq, expected, atol=0.02)  # 20k draws: std of each frequency <= 0.0036


def test_softmax_is_a_distribution():
    p = softmax(np.array([1000.0, 1000.0, -1000.0]))
    np.testing.assert_allclose(p, [0.5, 0.5, 0.0])


# ---------------------------------------------------------------------------------------------
# One random stream and one order: the same seed picks the same tokens as the browser's JS sampler
# ---------------------------------------------------------------------------------------------

JS_DRAWS = """
const {Sampler} = await import(process.argv[1]);
const cases = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const out = cases.map((c) => {
  const s = new Sampler(c.params, c.seen);
  return c.steps.map(([logits, ids, mask]) =>
    s.sample(Float32Array.from(logits), ids, mask ? Uint32Array.from(mask) : undefined));
});
console.log(JSON.stringify(out));
"""


def test_same_seed_same_tokens_as_the_js_sampler():
    """600 random cases × 8 draws (random logits with ties, every option, masks), run by the numpy
    Sampler and by web/src's JS Sampler in Node: the same token at every draw."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node")
    if node is None:
        pytest.skip("needs Node.js (the README's set-up installs it)")
    rng = np.random.default_rng(2024)
    cases = []
    for _ in range(600):
        V = int(rng.integers(2, 400))
        params = {"temperature": float(rng.choice([0, 0.3, 0.7, 1.0, 1.5, 3.0])),
                  "top_k": int(rng.choice([0, 0, 1, 3, 40, V + 5])), "top_p": float(rng.choice([1.0, 0.9, 0.5])),
                  "min_p": float(rng.choice([0.0, 0.0, 0.05, 0.3])),
                  "repetition_penalty": float(rng.choice([1.0, 1.3])),
                  "seed": int(rng.integers(0, 2**40)), "max_tokens": 8, "stop": ()}
        steps = []
        for _ in range(8):
            logits = np.round(rng.normal(size=V) * float(rng.choice([1, 4])), int(rng.choice([1, 6])))  # ties too
            logits = logits.astype(np.float32)
            mask = None
            if rng.random() < 0.3:
                bits = rng.random(V) < 0.5
                bits[int(rng.integers(V))] = True
                mask = np.packbits(np.concatenate([bits, np.zeros(-V % 32, bool)]), bitorder="little").view("<u4")
            steps.append((logits, [int(t) for t in rng.integers(0, V, size=int(rng.integers(0, 3)))], mask))
        cases.append({"params": params, "seen": [int(t) for t in rng.integers(0, V, size=3)], "steps": steps})
    want = []
    for c in cases:
        s = Sampler(SamplingParams(**c["params"]), c["seen"])
        want.append([s(lg, ids, None if m is None else m.tobytes()) for lg, ids, m in c["steps"]])
    wire = [{"params": {**c["params"], "stop": []}, "seen": c["seen"],
             "steps": [[lg.tolist(), ids, None if m is None else m.tolist()] for lg, ids, m in c["steps"]]}
            for c in cases]
    runtime = (Path(__file__).parent.parent / "web" / "src" / "sampler.js").resolve().as_uri()
    r = subprocess.run([node, "--input-type=commonjs", "-e", f"(async () => {{{JS_DRAWS}}})()", runtime],
                       input=json.dumps(wire), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    mismatches = [(i, j) for i in range(len(want)) for j in range(8) if got[i][j] != want[i][j]]
    assert mismatches == [], f"{len(mismatches)} of {8 * len(want)} draws differ, first {mismatches[:5]}"
