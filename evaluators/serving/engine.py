"""Iteration-level serving of one model instance: continuous batching, chunked prefill, a paged KV cache,
preemption by recompute; the scheduling decisions come from a policy (policy.py), checked by rules.py.

The engine is event-driven. At a decision point it shows the policy an Observation, checks its Decision and
runs what it asks for:
  - a step with prefill chunks (and, if decode, one token for every decoding request) is one GPU step,
    timed by the GPU model from its batch; a decision point follows it;
  - decode only: every decoding request gains a token per step, and nothing else changes until the next
    event: a request finishing, an arrival, or the KV cache unable to hold the next step. The engine
    computes how many alike steps come first and advances them in closed form (group.py), so a run of
    hundreds of decode steps costs about what one step does;
  - nothing (no chunk, and no decode): the GPU idles until the next arrival (or, if none will come and
    the decision preempted something, the policy is asked again at once). If nothing will arrive and the
    decision changed nothing, or the policy stays idle for max_idle_decisions decisions in a row, it breaks
    the progress rule (InvalidOutput). With the preemption limit this guarantees every request finishes.
Arrivals become visible at the step boundary at or after their arrival time (a real engine schedules between
iterations), or at once when the GPU is idle. The next turn of an agent session arrives a tool's run time
after the previous turn finishes (arrival_queue.py).

Prefix cache (EngineConfig.prefix_cache, for workloads with block hashes; prefix_cache.py): a request that
leaves the running set offers its prompt's whole 512-token units to the cache, which lives in free memory;
a waiting request sees as `cached` the prompt tokens it would find there, and on admission holds them as its
own KV and prefills only the rest. A policy may `retain` a finished request's units for a time-to-live.

Token semantics: a prefill that completes (the prompt, plus the generated tokens of a preempted request)
emits one token at the end of its step, the first token on the first time (TTFT). Each decode step over a
request with L cached tokens writes one more and emits the next token; a request finishes when it has its
true output length (known only to the engine). `reference=True` runs one decode step per decision with
sums taken request by request: the step-by-step reference the closed form is tested against.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from operator import attrgetter

import numpy as np

from evaluators.base import ConfigError, InvalidOutput
from evaluators.serving.arrival_queue import ArrivalQueue, RoutedQueue
from evaluators.serving.gpu import BLOCK_TOKENS as B, GpuModel
from evaluators.serving.group import DecodeGroup
from evaluators.serving.policy import DECODING, FINISHED, MIGRATING, PREFILLING, WAITING, Observation, Policy, Seq
from evaluators.serving.predictor import DEFAULT_SIGMA, predict_output
from evaluators.serving.prefixes import Prefixes
from evaluators.serving.records import Records, RunResult, RunStats
from evaluators.serving.requests import Requests
from evaluators.serving.rules import Plan, check

_BY_ARRIVAL = attrgetter("arrival_s", "id")


@dataclass(frozen=True)
class EngineConfig:
    token_budget: int = 8192        # tokens per step, decodes included (vLLM's max_num_batched_tokens)
    max_running: int = 256          # cap on running requests (vLLM's max_num_seqs)
    predictor_sigma: float = DEFAULT_SIGMA   # noise of the predicted output lengths (predictor.py)
    seed: int = 0                   # of the predictor's draws: the workload's seed
    max_preemptions: int = 100      # per request; more is a livelock, refused (rule preempt-limit)
    max_idle_decisions: int = 100   # idle decisions in a row while requests wait (rule progress)
    prefix_cache: bool = False      # keep prompt prefixes in free KV memory (workloads with block hashes)
    reference: bool = False         # step-by-step reference mode (tests)


class Engine:
    def __init__(self, requests: Requests, gpu: GpuModel, policy: Policy, config: EngineConfig = EngineConfig(),
                 arrivals: ArrivalQueue | RoutedQueue | None = None):
        """`arrivals`: where requests come from; by default all of `requests` at their times (a cluster gives
        each instance a RoutedQueue of the requests routed to it)."""
        if not 1 <= config.max_running <= config.token_budget:
            raise ConfigError(f"max_running ({config.max_running}) must be in [1, token_budget "
                              f"({config.token_budget})]: every running request decodes in each step")
        need = -(-(requests.prompt_tokens + requests.output_tokens - 1) // B)
        if len(need) and need.max() > gpu.kv_blocks:
            i = int(need.argmax())
            raise ConfigError(f"request {i} needs {int(need[i])} KV blocks alone; {gpu.name} has {gpu.kv_blocks}")
        self.requests, self.gpu, self.policy, self.config = requests, gpu, policy, config
        self.cost, self.kv_blocks_total = gpu.step, gpu.kv_blocks
        self._arrival = requests.arrival_s.tolist()   # the real arrival times (closed-loop turns: set on arrival)
        self.arrivals = arrivals if arrivals is not None else ArrivalQueue(requests)
        self._session, self._client = requests.session.tolist(), requests.client.tolist()
        self.prefixes = Prefixes(requests.hash_ids) if config.prefix_cache and requests.hash_ids else None
        self._just_finished: list[Seq] = []
        self._prompt = requests.prompt_tokens.tolist()
        self._out = requests.output_tokens.tolist()   # the truth: never shown to the policy
        self._pred = predict_output(requests.output_tokens, config.predictor_sigma, config.seed).tolist()
        n = len(self._arrival)
        self._first = [math.nan] * n
        self._finish = [math.nan] * n
        self.seqs: list[Seq] = []        # every arrived request, by id
        self.waiting: list[Seq] = []     # arrival (= id) order
        self.prefilling: dict[int, Seq] = {}
        self.group = DecodeGroup()
        self.used_prefill = 0            # KV blocks held by prefilling requests (and reserved for `incoming`)
        self.incoming: dict[int, Seq] = {}   # requests migrating in, with their KV (migration.py)
        self.blocks_in_use = self.decode_blocks = 0   # at the current decision point (rules.py reads them)
        self.now = 0.0
        self.decisions = self.steps = self.prefill_steps = self.decode_runs = 0
        self.idle_decisions = self.preemptions = 0
        self.busy_s = 0.0
        self._finished = self._idle_run = 0
        self._events: list[str] = []

    def where(self) -> str:
        return f"decision {self.decisions} (step {self.steps}, t={self.now:.6f} s)"

    # ------------------------------------------------------------------ the loop

    def run(self) -> RunResult:
        n = len(self._arrival)
        while self._finished < n:
            self.tick()
        return self._result()

    def busy(self) -> bool:
        return bool(self.waiting or self.prefilling or self.group.members)

    def tick(self) -> None:
        """One turn of the loop: take the arrivals due; with work, one decision and the step(s) it runs;
        without, jump the clock to the next arrival."""
        self._arrive()
        if not self.busy():
            if self._just_finished and self.prefixes is not None:
                self._notify_finished()
            self.now = max(self.now, self.arrivals.next_time())   # nothing to do before the next arrival
            return
        plan = check(self.policy.decide(self._observe()), self)
        if plan.retain:
            self._retain(plan.retain)
        if plan.preempt:
            self._preempt(plan.preempt)
        if plan.admit:
            self._admit(plan.admit)
        if plan.chunks:
            self._prefill_step(plan)
        elif plan.decode:
            self._decode_run()
        else:
            self._idle(bool(plan.preempt))
        self.decisions += 1

    def record(self, rid: int) -> tuple[float, float, float, int]:
        """(arrival, first token, finish, preemptions) of request `rid` (NaN times if it never came here)."""
        seq = self.seqs[rid] if rid < len(self.seqs) else None
        return self._arrival[rid], self._first[rid], self._finish[rid], seq.preemptions if seq else 0

    def _notify_finished(self) -> None:
        """Requests finished and nothing else is left to run: the policy still hears of it at once, so that
        it can retain their prefixes from now (a decision that can only retain)."""
        plan = check(self.policy.decide(self._observe()), self)
        if plan.retain:
            self._retain(plan.retain)
        self.decisions += 1

    def _arrive(self) -> None:
        if self.arrivals.next_time() > self.now:
            return
        due = self.arrivals.pop_due(self.now)
        if not due:   # a cluster instance at the cluster's horizon, with nothing routed to it
            return
        arrival, prompt, pred, seqs, waiting = self._arrival, self._prompt, self._pred, self.seqs, self.waiting
        session, client = self._session, self._client
        for t, i in due:
            if self.incoming and i in self.incoming:
                self._adopt(self.incoming.pop(i))
                continue
            arrival[i] = t
            seq = Seq(i, prompt[i], t, pred[i], session[i], client[i])
            while len(seqs) <= i:   # closed-loop turns arrive out of id order: slots wait for them
                seqs.append(None)
            seqs[i] = seq
            waiting.append(seq)   # in arrival order, after everything already waiting
        self._events.append("arrival")

    def _observe(self) -> Observation:
        group = self.group
        if self.config.reference:
            self.blocks_in_use = sum(s.kv_blocks for s in self.prefilling.values()) + \
                sum(s.kv_blocks for s in group.members.values())
            self.decode_blocks = sum(s.kv_tokens % B == 0 for s in group.members.values())
        else:
            self.blocks_in_use = self.used_prefill + group.blocks()
            self.decode_blocks = group.next_blocks()
        cached = pinned = 0
        if self.prefixes is not None:
            cached, pinned = self.prefixes.refresh(self.now, self.kv_blocks_total - self.blocks_in_use, self.waiting)
            self.blocks_in_use += pinned
        events, finished = tuple(self._events), self._just_finished
        self._events.clear()
        self._just_finished = []
        return Observation(self.now, self.decisions, self.steps, events, self.config.token_budget,
                           self.config.max_running, self.kv_blocks_total,
                           self.kv_blocks_total - self.blocks_in_use, self.decode_blocks, self.waiting,
                           self.prefilling.values(), group.members.values(), finished, cached, pinned)

    def retain_blocks(self, seq: Seq) -> int:
        """Blocks that retaining `seq`'s prefix would newly pin (rules.py)."""
        return self.prefixes.retain_blocks(seq) if self.prefixes is not None else 0

    def pinned_blocks(self) -> int:
        return self.prefixes.pinned_blocks() if self.prefixes is not None else 0

    def decode_new_blocks(self) -> int:
        return self.decode_blocks

    def blocks_used(self) -> int:
        return self.blocks_in_use

    # ------------------------------------------------------------------ migration (migration.py)

    def detach(self, rid: int) -> Seq:
        """Decoding request `rid` leaves to migrate: out of the decode group, its KV freed here."""
        seq = self.seqs[rid]
        self.group.leave(seq)
        if self.prefixes is not None:
            self.prefixes.release(seq, self.now)
        seq.state = MIGRATING
        self._events.append("migration")
        return seq

    def expect(self, seq: Seq, t: float, arrival_s: float, first_s: float) -> None:
        """`seq` arrives at `t` with its KV, whose blocks are held for it from now."""
        self.incoming[seq.id] = seq
        self.used_prefill += seq.kv_blocks
        self._arrival[seq.id], self._first[seq.id] = arrival_s, first_s
        self.arrivals.push(t, seq.id)

    def _adopt(self, seq: Seq) -> None:
        """A migrated request arrives: it decodes from the next step, its KV already here (no prefill)."""
        self.used_prefill -= seq.kv_blocks
        while len(self.seqs) <= seq.id:
            self.seqs.append(None)
        self.seqs[seq.id] = seq
        self.group.join(seq, self._out[seq.id])

    # ------------------------------------------------------------------ applying a decision

    def _retain(self, retain: list[tuple[Seq, float]]) -> None:
        if self.prefixes is not None:
            for seq, ttl in retain:
                self.prefixes.pin(seq, self.now + ttl)

    def _preempt(self, victims: list[Seq]) -> None:
        for seq in victims:
            if seq.state == DECODING:
                self.group.leave(seq)
            else:
                del self.prefilling[seq.id]
                self.used_prefill -= seq.kv_blocks
            if self.prefixes is not None:
                self.prefixes.release(seq, self.now)
            seq._c = 0                       # KV freed; generated tokens kept, to be recomputed
            seq.state = WAITING
            seq.preemptions += 1
            seq.queued_at_s = self.now
            bisect.insort(self.waiting, seq, key=_BY_ARRIVAL)
        self.preemptions += len(victims)

    def _admit(self, admit: list[Seq]) -> None:
        prefixes = self.prefixes
        for seq in admit:
            seq.state = PREFILLING
            self.prefilling[seq.id] = seq
            if prefixes is not None:   # its prefix-cache hit (if any) becomes its own KV
                prefixes.admit(seq)
                self.used_prefill += -(-seq._c // B)
        waiting, k = self.waiting, len(admit)
        if all(s.state == PREFILLING for s in waiting[:k]):   # the usual case: the head of the queue
            del waiting[:k]
        else:
            waiting[:] = [s for s in waiting if s.state == WAITING]

    # ------------------------------------------------------------------ running steps

    def _prefill_step(self, plan: Plan) -> None:
        tokens = sampled = pairs = kv_read = 0
        for seq, c in plan.chunks:
            p = seq._c
            tokens += c
            pairs += c * p + c * (c + 1) // 2
            kv_read += p
            sampled += c == seq.prompt_tokens + seq._g - p
        group = self.group
        if plan.decode:
            m, s = len(group.members), self._decode_kv_tokens()
            tokens += m
            sampled += m
            pairs += s + m
            kv_read += s
        dt = self.cost.time(tokens, sampled, pairs, kv_read)
        self._advance(dt, 1)
        self.prefill_steps += 1
        if plan.decode:
            group.clock.d += 1
            self._done(group.pop_finished())
        for seq, c in plan.chunks:
            self._chunk_done(seq, c)
        self._events.append("prefill")

    def _chunk_done(self, seq: Seq, c: int) -> None:
        before = -(-seq._c // B)
        seq._c += c
        after = -(-seq._c // B)
        self.used_prefill += after - before
        if seq._c < seq.prompt_tokens + seq._g:
            return
        # prefill complete: it emits a token and decodes from the next step (or is done)
        rid = seq.id
        del self.prefilling[rid]
        self.used_prefill -= after
        seq._g += 1
        if seq._g == 1:
            self._first[rid] = self.now
        if seq._g >= self._out[rid]:
            self._done([seq])
        else:
            self.group.join(seq, self._out[rid])

    def _decode_run(self) -> None:
        group, cost = self.group, self.cost
        if self.config.reference:
            m, s = len(group.members), self._decode_kv_tokens()
            k, dt = 1, cost.time(m, m, s + m, s)
        else:
            free = self.kv_blocks_total - self.used_prefill - group.blocks() - self.pinned_blocks()
            k = min(group.steps_to_finish(), group.safe_steps(free))
            nxt = self.arrivals.next_time()
            if nxt < math.inf:
                k = min(k, group.steps_until(nxt - self.now, cost))
            dt = group.time(k, cost)
        self._advance(dt, k)
        self.decode_runs += 1
        group.clock.d += k
        self._done(group.pop_finished())
        if group.members and not self.config.reference:
            if group.next_blocks() > self.kv_blocks_total - self.used_prefill - group.blocks() - self.pinned_blocks():
                self._events.append("kv_full")

    def _decode_kv_tokens(self) -> int:
        if self.config.reference:
            return sum(s.kv_tokens for s in self.group.members.values())
        return self.group.kv_tokens()

    def _advance(self, dt: float, steps: int) -> None:
        self.now += dt
        self.busy_s += dt
        self.steps += steps
        self._idle_run = 0

    def _done(self, seqs: list[Seq]) -> None:
        if not seqs:
            return
        prefixes, arrivals = self.prefixes, self.arrivals
        for seq in seqs:
            if prefixes is not None:
                prefixes.release(seq, self.now)
            seq.state = FINISHED
            seq._c = 0
            self._finish[seq.id] = self.now
            seq.tool_call = int(arrivals.finished(seq.id, self.now))
        self._just_finished.extend(seqs)
        self._finished += len(seqs)
        self._events.append("finish")

    def _idle(self, preempted: bool) -> None:
        """A decision that runs nothing. The clock jumps to the next arrival; with none to come, the policy
        is asked again at once if it changed something (preempted), else nothing can ever change."""
        self.idle_decisions += 1
        self._idle_run += 1
        held = len(self.waiting) + len(self.prefilling) + len(self.group.members)
        if self._idle_run > self.config.max_idle_decisions:
            raise InvalidOutput(f"{self.where()}: rule 'progress': the policy left the GPU idle for "
                                f"{self._idle_run} decisions in a row while {held} requests wait or run")
        nxt = self.arrivals.next_time()
        if nxt < math.inf:
            self.now = max(self.now, nxt)
        elif not preempted:
            raise InvalidOutput(f"{self.where()}: rule 'progress': the policy scheduled no work while "
                                f"{held} requests wait or run, and no request will arrive")
        self._events.append("idle")

    def _result(self) -> RunResult:
        r = self.requests
        records = Records(np.array(self._arrival), np.array(self._first), np.array(self._finish),
                          r.prompt_tokens.copy(), r.output_tokens.copy(),
                          np.array([s.preemptions for s in self.seqs], dtype=np.int64),
                          r.session.copy(), r.client.copy())
        hit = self.prefixes.hit_rate if self.prefixes is not None else 0.0
        stats = RunStats(self.decisions, self.steps, self.prefill_steps, self.decode_runs, self.idle_decisions,
                         self.preemptions, self.busy_s, float(np.nanmax(records.finish_s)) if len(r) else 0.0, hit)
        return RunResult(records, stats, self.gpu.name)


def simulate(requests: Requests, gpu: GpuModel, policy: Policy, config: EngineConfig = EngineConfig()) -> RunResult:
    """Serve `requests` on `gpu` under `policy`: the per-request records and run statistics."""
    return Engine(requests, gpu, policy, config).run()
