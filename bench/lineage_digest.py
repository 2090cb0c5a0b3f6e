"""A run's lineage as one digest, to show that a change keeps the same seed's lineage byte-identical.

    .venv/bin/python bench/lineage_digest.py runs/<run-id>/lineage.db [--out lineage.json]

Covers every program (source, diff, status, reason, score, origin, island, generation, parent), every
attempt (proposer, stage, status, reason, message, proposal) and every deterministic metric value. Left
out, because they differ between any two runs of the same code: metrics an evaluator declares noisy
(runtime_ms, decision_s), timestamps, durations, database ids, and the frames of tracebacks (they name the
sandbox's temporary directory). Reads the database with sqlite3 so it works on stores of any schema version.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sqlite3

NOISY = {"runtime_ms", "decision_s"}
FRAME = re.compile(r'File "[^"]*", line \d+, in [^\n]*\n(    [^\n]*\n)*?(?=  File|\w)')


def dump(db: str) -> dict:
    con = sqlite3.connect(db)
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    metric_table = "metrics" if "metrics" in tables else "evaluations"
    names = {pid: [it, kind, name] for pid, it, kind, name in con.execute("select id, iteration, kind, name from programs")}
    key = names.get
    programs = [[key(pid), src, diff, st, rs, sc, org, isl, gen, key(par)] for pid, src, diff, st, rs, sc, org, isl, gen, par
                in con.execute("select id, source, diff, status, reason, score, origin, island, generation, parent_id "
                               "from programs order by kind, iteration, name")]
    attempts = [list(r[:-1]) + [key(r[-1])] for r in con.execute(
        "select iteration, island, proposer, stage, status, reason, message, proposal, program_id "
        "from attempts order by iteration")]
    metrics = sorted(([key(p), w, s, m, v] for p, w, s, m, v in con.execute(
        f"select program_id, workload, split, metric, value from {metric_table}") if m not in NOISY), key=json.dumps)
    artifacts = sorted(([key(p), n, FRAME.sub("File <frame>\n", c)] for p, n, c in con.execute(
        "select program_id, name, content from artifacts where program_id is not null")), key=json.dumps)
    con.close()
    return {"programs": programs, "attempts": attempts, "metrics": metrics, "artifacts": artifacts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("db")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    doc = dump(args.db)
    text = json.dumps(doc, sort_keys=True, indent=0)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    counts = ", ".join(f"{len(v)} {k}" for k, v in doc.items())
    print(f"sha256 {hashlib.sha256(text.encode()).hexdigest()}  ({counts})")


if __name__ == "__main__":
    main()
