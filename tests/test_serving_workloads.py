"""Serving workloads: generated statistics against REFERENCE.md, trace loaders (good and malformed files), ids."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from evaluators.base import ConfigError
from evaluators.serving.arrivals import Burst, inter_arrival_cv
from evaluators.serving.blocks import prefix_hits, reuse_ratio
from evaluators.serving.lengths import BLOCK_TOKENS
from evaluators.serving.traces import load_trace
from evaluators.serving.workload_id import GeneratedSpec, TraceSpec, parse_workload_id, workload_requests
from evaluators.serving.workloads import generate

TRACES = Path(__file__).parent / "fixtures" / "traces"
N = 20_000

# REFERENCE.md, "LLM serving workloads": (mean, median, mu, sigma) of prompt and output tokens
REFERENCE = {
    "azure-conv": ((1155, 1020, 6.63, 0.99), (211, 129, 5.02, 0.86)),
    "azure-code": ((2048, 1469, 7.00, 1.36), (28, 13, 2.79, 0.85)),
    "sharegpt": ((2340, 1730, 7.01, 1.63), (439, 415, 5.77, 1.00)),
    "mooncake": ((12035, 6909, 8.74, 1.20), (343, 350, 5.34, 1.36)),
}
# The generators' fitted distributions differ from the table by up to 7% in a mean or median (Azure
# conversation outputs: no split lognormal has its mean, median and p99 together; see lengths.py), and by up
# to 0.08 in (mu, sigma). On top of that, 4 standard errors of the estimate at N requests.
FIT_REL, FIT_LOG = 0.08, 0.10


@pytest.fixture(scope="module")
def generated() -> dict:
    return {kind: generate(kind, 5.0, n_requests=N, seed=11) for kind in REFERENCE}


@pytest.mark.parametrize("kind", sorted(REFERENCE))   # agent's figures are assumptions (agents.py), not a table
@pytest.mark.parametrize("column", [0, 1], ids=["prompt", "output"])
def test_lengths_match_reference(generated, kind, column):
    r = generated[kind]
    x = (r.prompt_tokens if column == 0 else r.output_tokens).astype(float)
    mean, median, mu, sigma = REFERENCE[kind][column]
    lx = np.log(x)
    se_mean = x.std() / math.sqrt(N)
    se_median = median * math.sqrt(math.pi / 2) * lx.std() / math.sqrt(N)   # a median's SE, on the log scale
    assert abs(x.mean() - mean) <= FIT_REL * mean + 4 * se_mean, (kind, x.mean(), mean)
    assert abs(np.median(x) - median) <= FIT_REL * median + 4 * se_median, (kind, np.median(x), median)
    assert abs(lx.mean() - mu) <= FIT_LOG + 4 * lx.std() / math.sqrt(N)
    assert abs(lx.std() - sigma) <= FIT_LOG + 4 * lx.std() / math.sqrt(2 * N)


def test_a_plain_lognormal_would_miss_the_medians():
    # why lengths.py fits split lognormals: exp(mu) is far from the table's medians
    assert abs(math.exp(6.63) / 1020 - 1) > 0.25 and abs(math.exp(5.34) / 350 - 1) > 0.4


@pytest.mark.parametrize("kind", ["azure-conv", "azure-code", "mooncake"])
def test_output_length_is_independent_of_prompt(generated, kind):
    r = generated[kind]
    corr = np.corrcoef(np.log(r.prompt_tokens), np.log(r.output_tokens))[0, 1]
    assert abs(corr) < 0.05   # SE of a correlation at N = 20,000 is 0.007; REFERENCE: traces show <= 0.09


@pytest.mark.parametrize("cv", [1.0, 2.0, 4.0])
def test_gamma_arrivals_have_the_requested_rate_and_cv(cv):
    r = generate("azure-conv", 5.0, n_requests=N, cv=cv, seed=5)
    # the sample CV's relative SE is sqrt((kurtosis - 1) / 4N), Gamma kurtosis 3 + 6 CV^2: 1.0%, 1.8%, 3.5%
    se_cv = math.sqrt((2 + 6 * cv**2) / (4 * N))
    assert abs(inter_arrival_cv(r.arrival_s) / cv - 1) <= 4 * se_cv
    rate = len(r) / r.arrival_s[-1]
    assert abs(rate / 5.0 - 1) <= 4 * cv / math.sqrt(N)   # SE of a mean gap: CV / sqrt(N)
    assert np.all(np.diff(r.arrival_s) >= 0) and r.arrival_s[0] > 0


def test_burst_overlay_clusters_arrivals_and_keeps_the_mean_rate():
    r = generate("azure-code", 2.6, n_requests=N, cv=1.0, seed=2, burst=Burst(20.0, on_s=2.0, off_s=6.0))
    assert inter_arrival_cv(r.arrival_s) > 1.8   # Poisson alone: 1.0; this overlay gives about 2.4
    # the rate's SD comes from the ~960 ON/OFF cycles in the run: about 2.8%; 4 SD
    assert abs(len(r) / r.arrival_s[-1] / 2.6 - 1) < 0.12


def test_duration_mode_keeps_arrivals_in_the_window():
    r = generate("azure-conv", 4.0, duration_s=1000.0, seed=1)
    assert r.arrival_s.max() < 1000.0 and abs(len(r) - 4000) < 4 * math.sqrt(4000)
    s = generate("sharegpt", 4.0, duration_s=1000.0, seed=1)
    assert s.arrival_s.max() < 1000.0 and abs(len(s) / 4000 - 1) < 0.15   # sessions: burstier counts


def test_same_seed_same_requests_and_lengths_do_not_depend_on_rate_or_count():
    a = generate("mooncake", 1.0, n_requests=500, seed=3)
    b = generate("mooncake", 7.0, n_requests=1000, seed=3, cv=2.0)
    assert np.array_equal(a.prompt_tokens, b.prompt_tokens[:500])
    assert np.array_equal(a.output_tokens, b.output_tokens[:500])
    assert all(np.array_equal(x, y) for x, y in zip(a.hash_ids, b.hash_ids))
    again = generate("mooncake", 1.0, n_requests=500, seed=3)
    assert np.array_equal(a.arrival_s, again.arrival_s)
    assert not np.array_equal(a.prompt_tokens, generate("mooncake", 1.0, n_requests=500, seed=4).prompt_tokens)


def test_sharegpt_sessions_grow_and_share_their_history_blocks(generated):
    r = generated["sharegpt"]
    turns = np.bincount(r.session)
    assert 3.0 < turns.mean() < 4.0 and turns.max() > 10
    for sid in np.flatnonzero(turns > 1)[:300]:
        idx = np.flatnonzero(r.session == sid)   # arrival order = turn order
        for a, b in zip(idx[:-1], idx[1:]):
            # the next prompt is this prompt, its reply and at least one new token
            assert r.prompt_tokens[b] >= r.prompt_tokens[a] + r.output_tokens[a] + 1
            assert r.arrival_s[b] >= r.arrival_s[a] + 0.02 * r.output_tokens[a] - 1e-9
            full = r.prompt_tokens[a] // BLOCK_TOKENS
            assert np.array_equal(r.hash_ids[b][:full], r.hash_ids[a][:full])
    assert 0.3 < reuse_ratio(r.hash_ids) < 0.9   # most of a later turn is history


def test_sharegpt_requests_of_one_session_share_a_client():
    r = generate("sharegpt", 5.0, n_requests=3000, seed=2, clients=4)
    for sid in range(50):
        assert len(set(r.client[r.session == sid].tolist())) <= 1
    counts = np.bincount(r.client, minlength=4)
    assert counts[0] == counts.max() and counts.min() > 0


def test_mooncake_blocks_and_prefix_reuse():
    # calibrated at the conversation trace's size, 59 min x 3.4/s = 12,000 requests; over 8 seeds the ratio
    # is 0.360-0.374 (0.644-0.654 with prefix_share 0.95), so a +-0.05 band around REFERENCE's figures
    r = generate("mooncake", 3.4, n_requests=12_000, seed=21)
    assert all(h[0] == 0 for h in r.hash_ids)   # every prompt begins with the shared first block
    assert all(len(h) == math.ceil(p / BLOCK_TOKENS) for h, p in zip(r.hash_ids, r.prompt_tokens.tolist()))
    assert abs(reuse_ratio(r.hash_ids) - 0.366) < 0.05
    synthetic = generate("mooncake", 3.4, n_requests=12_000, seed=21, prefix_share=0.95)
    assert abs(reuse_ratio(synthetic.hash_ids) - 0.64) < 0.05


def test_prefix_hits_count_only_prefixes_seen_before():
    ids = tuple(np.array(h) for h in ([1, 2, 3], [1, 2, 4], [5, 2], [], [1, 2, 3, 9]))
    # request 1: 1, 2 found; request 2: 5 is new, so 2 does not count; request 4: 1, 2, 3
    assert prefix_hits(ids) == (5, 12)


# ---------------------------------------------------------------- trace loaders

def test_azure_fixture_loads_as_seconds_from_the_first_request():
    t = load_trace("azure", TRACES / "azure_conv.csv")
    r = t.requests
    assert len(r) == 30 and r.arrival_s[0] == 0
    assert r.arrival_s[1] == pytest.approx(47.0386336 - 46.6805909, abs=1e-6)
    assert (r.prompt_tokens[0], r.output_tokens[0]) == (1260, 107)
    assert r.hash_ids == () and np.all(r.session == -1) and t.dropped == t.raised == 0


def test_mooncake_fixture_keeps_block_hashes():
    r = load_trace("mooncake", TRACES / "mooncake.jsonl").requests
    assert len(r) == 24 and r.arrival_s[1] == pytest.approx(0.551)
    assert list(r.hash_ids[0]) == [0, 1, 2, 3, 4] and r.prompt_tokens[0] == 2324
    assert 0 < reuse_ratio(r.hash_ids) < 0.5


def test_burstgpt_fixture_drops_failed_requests_and_numbers_clients():
    t = load_trace("burstgpt", TRACES / "burstgpt.csv")
    assert t.dropped == 3 and len(t.requests) == 27
    # (ChatGPT, Conversation log), (GPT-4, Conversation log), (ChatGPT, API log) in order of appearance
    assert list(t.requests.client[:3]) == [0, 1, 2] and t.requests.arrival_s[1] == 4.0


def test_azure_timestamps_across_midnight_zones_and_plain_seconds(tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 23:59:59.5000000,10,0\n"
                 "2023-11-17T00:00:00.25Z,20,3\n2023-11-17 01:00:00.25+01:00,5,1\n")
    t = load_trace("azure", f)
    assert list(t.requests.arrival_s) == pytest.approx([0.0, 0.75, 0.75])
    assert t.raised == 1 and t.requests.output_tokens[0] == 1   # 0 generated tokens read as 1
    g = tmp_path / "b.csv"
    g.write_text("ContextTokens,TIMESTAMP,GeneratedTokens,Extra\n10,100.5,4,x\n11,101,5,y\n")
    assert list(load_trace("azure", g).requests.arrival_s) == [0.0, 0.5]


AZ = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
BG = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
MC = '{"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]}\n'
MALFORMED = [
    # (id, format, file content, line, field)
    ("azure-missing-column", "azure", "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.1,5\n", 1, "GeneratedTokens"),
    ("azure-not-a-number", "azure", AZ + "2023-11-16 18:15:46.1,5,4\n2023-11-16 18:15:47.1,abc,4\n", 3,
     "ContextTokens"),
    ("azure-negative", "azure", AZ + "2023-11-16 18:15:46.1,5,-4\n", 2, "GeneratedTokens"),
    ("azure-fraction", "azure", AZ + "2023-11-16 18:15:46.1,5.5,4\n", 2, "ContextTokens"),
    ("azure-unsorted", "azure", AZ + "2023-11-16 18:15:46.1,5,4\n2023-11-16 18:15:48.1,5,4\n"
     "2023-11-16 18:15:47.1,5,4\n", 4, "TIMESTAMP"),
    ("azure-bad-time", "azure", AZ + "2023-11-16 18:15:46.1,5,4\n16/11/2023 18:15,5,4\n", 3, "TIMESTAMP"),
    ("azure-short-row", "azure", AZ + "2023-11-16 18:15:46.1,5\n", 2, "GeneratedTokens"),
    ("azure-empty", "azure", "", 1, None),
    ("azure-header-only", "azure", AZ, 1, None),
    ("mooncake-bad-json", "mooncake", MC + '{"timestamp": 5, "input_length": 6\n', 2, None),
    ("mooncake-missing-key", "mooncake", MC + MC + '{"timestamp": 9, "output_length": 5}\n', 3, "input_length"),
    ("mooncake-negative", "mooncake", MC + '{"timestamp": 9, "input_length": 6, "output_length": -5}\n', 2,
     "output_length"),
    ("mooncake-string-length", "mooncake", '{"timestamp": 0, "input_length": "six", "output_length": 5}\n', 1,
     "input_length"),
    ("mooncake-unsorted", "mooncake", '{"timestamp": 10, "input_length": 6, "output_length": 5}\n' + MC, 2,
     "timestamp"),
    ("mooncake-bad-hashes", "mooncake", '{"timestamp": 0, "input_length": 6, "output_length": 5, '
     '"hash_ids": [1, -2]}\n', 1, "hash_ids"),
    ("mooncake-not-object", "mooncake", MC + "[1, 2, 3]\n", 2, None),
    ("mooncake-empty", "mooncake", "\n\n", 1, None),
    ("burstgpt-missing-column", "burstgpt", "Timestamp,Model,Request tokens,Response tokens,Total tokens\n"
     "5,ChatGPT,10,5,15\n", 1, "Log Type"),
    ("burstgpt-bad-timestamp", "burstgpt", BG + "5,ChatGPT,10,5,15,API log\nsoon,ChatGPT,10,5,15,API log\n", 3,
     "Timestamp"),
    ("burstgpt-negative", "burstgpt", BG + "5,ChatGPT,-10,5,15,API log\n", 2, "Request tokens"),
]


@pytest.mark.parametrize("fmt,content,line,field", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_traces_name_file_line_and_field(tmp_path, fmt, content, line, field):
    path = tmp_path / f"trace.{'jsonl' if fmt == 'mooncake' else 'csv'}"
    path.write_text(content)
    with pytest.raises(ConfigError) as e:
        load_trace(fmt, path)
    msg = str(e.value)
    assert str(path) in msg and f"line {line}" in msg, msg
    if field:
        assert f"'{field}'" in msg, msg


def test_unknown_trace_format_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="azure, mooncake, burstgpt"):
        load_trace("vidur", tmp_path / "x.csv")
    with pytest.raises(ConfigError, match="not found"):
        load_trace("azure", tmp_path / "x.csv")


# ---------------------------------------------------------------- workload ids

def test_generated_id_fields_and_load_resolved_by_the_caller():
    spec = parse_workload_id("azure-conv:seed=3:load=0.8:cv=2:n=2000")
    assert isinstance(spec, GeneratedSpec)
    assert (spec.kind, spec.seed, spec.load, spec.cv, spec.n_requests) == ("azure-conv", 3, 0.8, 2.0, 2000)
    assert spec.rate(capacity_rps=10.0) == pytest.approx(8.0)
    r = spec.requests(spec.rate(10.0))
    assert len(r) == 2000 and r.name == spec.id
    with pytest.raises(ConfigError, match="capacity"):
        spec.rate()
    m = parse_workload_id("mooncake:seed=4:dur=60:rate=2:burst=5:on=3:off=9:share=0.9:clients=3")
    assert m.rate() == 2.0 and m.burst == Burst(5.0, 3.0, 9.0) and dict(m.extra) == {"prefix_share": 0.9}
    assert m.requests(m.rate()).arrival_s.max() < 60
    assert len(workload_requests("sharegpt:seed=1:n=50:think=5:load=0.5", capacity_rps=6.0)) == 50


def test_trace_id_resolves_against_the_problem_folder_with_n_and_speed():
    spec = parse_workload_id("trace:burstgpt:burstgpt.csv:speed=2:n=10", problem_dir=TRACES)
    assert isinstance(spec, TraceSpec) and spec.path == TRACES / "burstgpt.csv"
    full = load_trace("burstgpt", TRACES / "burstgpt.csv").requests
    r = spec.load().requests
    assert len(r) == 10 and np.allclose(r.arrival_s, full.arrival_s[:10] / 2)
    absolute = workload_requests(f"trace:mooncake:{TRACES / 'mooncake.jsonl'}:n=3", problem_dir=Path("/nowhere"))
    assert len(absolute) == 3


@pytest.mark.parametrize("wid,expect", [
    ("vllm:seed=1:n=5", "known: azure-conv, azure-code, sharegpt, mooncake"),
    ("azure-conv:seed=1:n=5:zap=2", "key one of: seed, n, dur, load, rate, cv"),
    ("azure-conv:seed3:n=5", "bad part 'seed3'"),
    ("azure-conv:seed=1:n=5:think=3", "bad part 'think=3'"),   # think is sharegpt's
    ("azure-conv:seed=1:seed=2:n=5", "given twice"),
    ("azure-conv:n=5", "missing seed"),
    ("azure-conv:seed=1", "exactly one of n=<requests> and dur=<seconds>"),
    ("azure-conv:seed=1:n=5:dur=9", "exactly one of n"),
    ("azure-conv:seed=1:n=5:load=1:rate=2", "not both"),
    ("azure-conv:seed=1:n=five", "n must be a whole number"),
    ("azure-conv:seed=1:n=5:cv=9", "cv must be in"),
    ("azure-conv:seed=1:n=5:on=3", "add burst"),
    ("azure-conv:seed=1:n=5:burst=0.5", "factor must be >= 1"),
    ("trace:vidur:x.csv", "known: azure, mooncake, burstgpt"),
    ("trace:azure:azure_conv.csv:every=2", "key one of: n, speed"),
    ("trace:azure:missing.csv", "trace file not found"),
    ("trace:azure:azure_conv.csv:speed=0", "speed > 0"),
    ("trace:azure:", "no file"),
])
def test_bad_ids_say_what_is_allowed(wid, expect):
    with pytest.raises(ConfigError) as e:
        parse_workload_id(wid, problem_dir=TRACES)
    assert expect in str(e.value) and wid in str(e.value)


def test_a_hot_prefix_burst_takes_over_the_middle_third_only():
    from collections import Counter
    r = generate("mooncake", 2.0, n_requests=900, seed=7, hot_burst=0.8)
    second = [int(h[1]) if len(h) > 1 else -1 for h in r.hash_ids]
    top, count = Counter(second[300:600]).most_common(1)[0]
    assert count > 0.6 * 300 and top not in second[:300] and top not in second[600:]
    plain = generate("mooncake", 2.0, n_requests=900, seed=7)
    assert plain.prompt_tokens.tolist() == r.prompt_tokens.tolist()   # only the content changes
    with pytest.raises(ConfigError, match="hot_burst"):
        generate("azure-conv", 2.0, n_requests=10, seed=7, hot_burst=0.5)
