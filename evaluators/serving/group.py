"""The decode group: every running request past its prefill, advanced together in closed form.

Between decision points each member decodes one token per step, so after j more steps a member with KV
length L holds L + j tokens. Members store offsets from the group's clock d (the count of uniform decode
steps so far): kv = c + d, generated = g + d. Advancing k steps is then `d += k`, and the group keeps sums
that answer everything the engine asks in O(1) or O(block size), whatever the batch size:
  - KV tokens in use: sum(c) + m*d;
  - KV blocks in use: sum(ceil((c + d)/B)) = sum(c // B) + a histogram of c mod B (the "phase");
  - steps until the cache runs out: member i needs a new block at steps o_i, o_i + B, ... where
    o_i = (-(c_i + d) mod B) + 1, so k steps need m*(k // B) + #{o_i <= k mod B} blocks;
  - steps until the first member finishes: a heap of the clock value at which each one is done;
  - time of k steps: a step over m members with S cached tokens takes alpha + beta*S (gpu.StepCost is
    linear), S grows by m per step, so k steps take k*alpha + beta*(k*S + m*k*(k-1)/2), exactly.
"""
from __future__ import annotations

import heapq

from evaluators.serving.gpu import BLOCK_TOKENS as B, StepCost
from evaluators.serving.policy import DECODING, STOPPED, Clock, Seq


class DecodeGroup:
    def __init__(self) -> None:
        self.clock = Clock()
        self.members: dict[int, Seq] = {}
        self._csum = 0              # sum of members' c
        self._ksum = 0              # sum of members' c // B
        self._phase = [0] * B       # members by c mod B
        self._done_at: dict[int, int] = {}   # member id -> clock value when its last token is out
        self._heap: list[tuple[int, int]] = []

    def join(self, seq: Seq, output_tokens: int) -> None:
        """`seq` has just produced a token (its counters are absolute); it decodes from the next step."""
        d = self.clock.d
        c, g = seq._c - d, seq._g - d
        seq._c, seq._g, seq._clock, seq.state = c, g, self.clock, DECODING
        self.members[seq.id] = seq
        self._csum += c
        self._ksum += c // B
        self._phase[c % B] += 1
        done = output_tokens - g
        self._done_at[seq.id] = done
        heapq.heappush(self._heap, (done, seq.id))

    def leave(self, seq: Seq) -> None:
        """Take `seq` out (finished or preempted); its counters become absolute again. The caller sets its
        new state."""
        c = seq._c
        del self.members[seq.id]
        del self._done_at[seq.id]
        self._csum -= c
        self._ksum -= c // B
        self._phase[c % B] -= 1
        d = self.clock.d
        seq._c, seq._g, seq._clock = c + d, seq._g + d, STOPPED

    def kv_tokens(self) -> int:
        return self._csum + len(self.members) * self.clock.d

    def blocks(self) -> int:
        """KV blocks the members hold now."""
        m = len(self.members)
        if not m:
            return 0
        q, r = divmod(self.clock.d, B)
        ph = self._phase
        # ceil((phi + r)/B) is 0 for phi + r == 0, 2 for phi + r > B, else 1
        return self._ksum + m * q + m - (ph[0] if r == 0 else 0) + sum(ph[B - r + 1:])

    def next_blocks(self) -> int:
        """New blocks the next decode step needs: members whose KV fills its last block exactly."""
        return self._phase[-self.clock.d % B] if self.members else 0

    def safe_steps(self, free_blocks: int) -> int:
        """How many decode steps can run before the members need more than `free_blocks` new blocks."""
        m = len(self.members)
        if not m:
            return 1 << 62
        q, rem = divmod(free_blocks, m)
        d, ph, seen = self.clock.d, self._phase, 0
        for r in range(1, B + 1):
            seen += ph[(1 - r - d) % B]   # members whose first new block is at step r
            if seen > rem:
                return B * q + r - 1
        raise AssertionError("unreachable: every member needs a block within B steps")

    def steps_to_finish(self) -> int:
        """Steps until the first member has all its tokens (>= 1 while there are members)."""
        heap, done_at = self._heap, self._done_at
        while heap and done_at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)   # stale: that member left (or left and rejoined with a new entry)
        return heap[0][0] - self.clock.d if heap else 1 << 62

    def pop_finished(self) -> list[Seq]:
        """Members whose last token came out at the current clock, taken out of the group."""
        out = []
        heap, done_at, d = self._heap, self._done_at, self.clock.d
        while heap and heap[0][0] <= d:
            done, rid = heapq.heappop(heap)
            if done_at.get(rid) == done:
                seq = self.members[rid]
                self.leave(seq)
                out.append(seq)
        return out

    def time(self, k: int, cost: StepCost) -> float:
        """Seconds of the next k decode steps."""
        m = len(self.members)
        alpha = cost.fixed_s + m * (cost.token_s + cost.sampled_s + cost.pair_s)
        beta = cost.pair_s + cost.kv_read_s
        s = self._csum + m * self.clock.d
        return k * alpha + beta * (k * s + m * k * (k - 1) / 2)

    def steps_until(self, dt: float, cost: StepCost) -> int:
        """The fewest decode steps (>= 1) whose summed time reaches `dt` seconds."""
        m = len(self.members)
        alpha = cost.fixed_s + m * (cost.token_s + cost.sampled_s + cost.pair_s)
        beta = cost.pair_s + cost.kv_read_s
        a2 = beta * m / 2
        a1 = alpha + beta * (self._csum + m * self.clock.d) - a2
        if dt <= 0:
            return 1
        k = dt / a1 if a2 == 0 else (-a1 + (a1 * a1 + 4 * a2 * dt) ** 0.5) / (2 * a2)
        k = max(1, int(k))
        while k > 1 and self.time(k - 1, cost) >= dt:   # rounding: settle on the exact boundary
            k -= 1
        while self.time(k, cost) < dt:
            k += 1
        return k
