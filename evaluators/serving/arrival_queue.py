"""The requests still to arrive: fixed arrival times, plus the next turns of agent sessions, which arrive a
tool's run time after the previous turn finishes in the simulation (closed loop; see requests.py). In a
cluster, the cluster holds the ArrivalQueue and each instance a RoutedQueue of what the router sent it."""
from __future__ import annotations

import heapq
import math

from evaluators.serving.requests import Requests

INF = math.inf


class ArrivalQueue:
    def __init__(self, requests: Requests) -> None:
        n = len(requests)
        arrival = requests.arrival_s.tolist()
        if requests.closed_loop:
            follows, gaps = requests.follows.tolist(), requests.gap_s.tolist()
            self._fixed = [(arrival[i], i) for i in range(n) if follows[i] < 0]
            self._next_turn = {j: (i, gaps[i]) for i, j in enumerate(follows) if j >= 0}
        else:
            self._fixed = list(zip(arrival, range(n)))
            self._next_turn = {}
        self._i = 0
        self._released: list[tuple[float, int]] = []   # (arrival time, id) of released next turns

    def next_time(self) -> float:
        """When the next known request arrives (inf if none is known: every later turn waits on a finish)."""
        t = self._fixed[self._i][0] if self._i < len(self._fixed) else INF
        return min(t, self._released[0][0]) if self._released else t

    def pop_due(self, now: float) -> list[tuple[float, int]]:
        """(arrival time, id) of every request arrived by `now`, in arrival order (ties by id)."""
        fixed, i, released = self._fixed, self._i, self._released
        out = []
        while i < len(fixed) and fixed[i][0] <= now:
            out.append(fixed[i])
            i += 1
        self._i = i
        if released and released[0][0] <= now:
            while released and released[0][0] <= now:
                out.append(heapq.heappop(released))
            out.sort()
        return out

    def finished(self, rid: int, now: float) -> bool:
        """Request `rid` finished at `now`: its session's next turn (if any) will arrive after its gap.
        Returns whether one will (the reply was a tool call)."""
        nxt = self._next_turn.pop(rid, None) if self._next_turn else None
        if nxt is not None:
            heapq.heappush(self._released, (now + nxt[1], nxt[0]))
        return nxt is not None


class RoutedQueue:
    """One instance's arrivals in a cluster: requests pushed by the router. `horizon` is the cluster's next
    event time, so that the instance's closed-form decode runs stop there and instances stay in step;
    finishes are reported to the cluster (`on_finish`), which releases next turns to the router."""

    def __init__(self, on_finish) -> None:
        self._heap: list[tuple[float, int]] = []
        self.horizon = INF
        self._on_finish = on_finish

    def push(self, t: float, rid: int) -> None:
        heapq.heappush(self._heap, (t, rid))

    def pending(self) -> bool:
        return bool(self._heap)

    def next_time(self) -> float:
        return min(self._heap[0][0], self.horizon) if self._heap else self.horizon

    def pop_due(self, now: float) -> list[tuple[float, int]]:
        heap, out = self._heap, []
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap))
        return out

    def finished(self, rid: int, now: float) -> bool:
        return self._on_finish(rid, now)
