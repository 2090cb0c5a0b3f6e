"""Commit order: `proposal` (the default) commits in iteration order behind the slowest evaluation;
`completion` commits each iteration as its evaluation ends, refills the slot at once, records that the run
is not reproducible, and a killed completion-order run resumes with nothing lost or duplicated.
The controller here runs with an instant proposer and a sleeping evaluator (no sandbox): what is tested is
the order of commits, not scoring."""
import asyncio
import re
import time

import pytest

from evaluators.base import WorkloadResult
from evolve import problem
from evolve.config import RunConfig, build
from evolve.errors import AdrsError
from evolve.run import session
from evolve.run.controller import Controller
from evolve.run.scoring import Scorecard
from evolve.search.edits import FullRewrite
from evolve.search.proposer import Proposal, Proposer
from evolve.store import Run, Store, sqlite_url
from tests.conftest import TOY

SLOW_S, FAST_S = 1.0, 0.02


class NumberingProposer(Proposer):
    """Writes the iteration into the child's source, so the evaluator knows which iteration it scores."""
    name = "numbering"

    async def propose(self, ctx):
        src = re.sub(r"# EVOLVE-BLOCK-END", f"ITERATION = {ctx.iteration}\n# EVOLVE-BLOCK-END",
                     re.sub(r"ITERATION = \d+\n", "", ctx.parent.source), count=1)
        return Proposal(edit=FullRewrite(src), description=f"iteration {ctx.iteration}")


def sleeping_evaluate(slow: set[int]):
    """Iterations in `slow` take SLOW_S, the rest FAST_S; the score grows with the iteration."""
    def evaluate(source: str, stages) -> Scorecard:
        m = re.search(r"ITERATION = (\d+)", source)
        i = int(m.group(1)) if m else 0
        time.sleep(SLOW_S if i in slow else FAST_S)
        out = Scorecard(status="ok", stage=stages[-1][0])
        for split, ids in stages:
            out.results[split] = [WorkloadResult(w, {"score": i / 100, "mse": 1.0}) for w in ids]
        return out
    return evaluate


def new_store(tmp_path, cfg: RunConfig) -> Store:
    store = Store(sqlite_url(tmp_path / "lineage.db"), create=True)
    store.create_run(Run(id="r", problem="toy", problem_dir=str(TOY), seed=0, config=cfg.to_json(),
                         sandbox="none", isolation="{}", versions="{}", created_at=0.0))
    return store


def commit_order(store: Store) -> list[int]:
    return [a.iteration for a in sorted(store.attempts("r"), key=lambda a: a.id)]


def run_loop(tmp_path, order: str, iterations: int = 16, slow: frozenset[int] = frozenset({1})) -> list[int]:
    cfg = RunConfig(problem=str(TOY), iterations=iterations, eval_slots=2, proposals_in_flight=1, order=order)
    store = new_store(tmp_path, cfg)
    ctl = Controller(problem.load(str(TOY)), cfg, store, "r", NumberingProposer(), sleeping_evaluate(set(slow)))
    asyncio.run(ctl.run())
    return commit_order(store)


def test_proposal_order_commits_behind_the_slowest_evaluation(tmp_path):
    order = run_loop(tmp_path, "proposal")
    assert order == list(range(17))


def test_completion_order_commits_as_evaluations_finish_and_keeps_workers_busy(tmp_path):
    order = run_loop(tmp_path, "completion")
    assert sorted(order) == list(range(17))                 # every iteration exactly once
    # while iteration 1 sleeps in one slot (SLOW_S), the other slot goes on through the fast ones
    # (15 * FAST_S): most iterations commit before it
    assert order.index(1) >= 8, order


def test_a_completion_order_run_records_that_it_is_not_reproducible(tmp_path):
    class NoSandbox:
        def isolation(self):
            return {}

    h = session.create(RunConfig(problem=str(TOY), runs_dir=str(tmp_path), run_id="c", order="completion"),
                       NoSandbox())
    started = h.store.events("c")[0]
    assert (started.kind, started.detail) == ("started", session.NOT_REPRODUCIBLE)
    assert RunConfig.from_json(h.store.run("c").config).order == "completion"
    h = session.create(RunConfig(problem=str(TOY), runs_dir=str(tmp_path), run_id="p"), NoSandbox())
    assert h.store.events("p")[0].detail == ""
    with pytest.raises(AdrsError, match="order: must be one of proposal, completion"):
        build({"order": "fastest"}, "command line")


def test_a_killed_completion_order_run_resumes_its_lost_iterations(tmp_path):
    cfg = RunConfig(problem=str(TOY), iterations=12, eval_slots=2, proposals_in_flight=1, order="completion")
    store = new_store(tmp_path, cfg)
    spec = problem.load(str(TOY))
    ctl = Controller(spec, cfg, store, "r", NumberingProposer(), sleeping_evaluate({3}))

    async def kill_while_3_runs():
        task = asyncio.ensure_future(ctl.run())
        while len(store.attempts("r")) < 6:
            await asyncio.sleep(0.01)
        task.cancel()                                        # the controller dies; iteration 3 is in flight
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(kill_while_3_runs())
    before = commit_order(store)
    assert 3 not in before and max(before) > 3               # a gap below the last committed iteration
    resumed = Controller(spec, cfg, store, "r", NumberingProposer(), sleeping_evaluate(set()))
    asyncio.run(resumed.run())
    after = commit_order(store)
    assert after[:len(before)] == before                     # committed work untouched
    assert sorted(after) == list(range(13))                  # the lost iteration redone, none twice


def test_progress_shows_the_highest_committed_iteration_never_going_back():
    import io
    from rich.console import Console
    from evolve.run.controller import LoopStats
    from evolve.run.progress import Progress
    buf = io.StringIO()
    with Progress(Console(file=buf, width=200), 5, "r") as p:
        p.on_commit(4, LoopStats())
        time.sleep(0.15)              # past the redraw interval: the next commit is drawn
        p.on_commit(2, LoopStats())   # completion order: iteration 2 finishes after 4
    assert "iteration 4/5" in buf.getvalue() and "iteration 2/5" not in buf.getvalue()


def test_progress_rate_counts_every_evaluation_of_this_process():
    """The first commit's evaluation counts (a one-iteration run is not at 0.0 evals/s); evaluations read back
    from the store (the initial program, a resumed run's) do not."""
    import io
    from rich.console import Console
    from evolve.run.controller import LoopStats
    from evolve.run.progress import Progress
    buf = io.StringIO()
    with Progress(Console(file=buf, width=200), 1, "r") as p:
        time.sleep(0.6)
        p.on_commit(1, LoopStats(evaluated=41, replayed=40))
    rate = float(re.search(r"([0-9.]+) evals/s", buf.getvalue()).group(1))
    assert 0.8 <= rate <= 1.7, buf.getvalue()   # 1 evaluation in a little over 0.6 s
