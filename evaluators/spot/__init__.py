"""Spot-instance scheduling (Can't Be Late, NSDI'24), shared by cant_be_late and cant_be_late_multi.

zones.py         the availability figures per zone/region (REFERENCE.md) and the prices
availability.py  spot availability per tick: a semi-Markov on/off generator, and a trace-file loader
simulator.py     the tick simulator: restart overhead, preemption, cost, and the deadline guard
policy_io.py     what the sandboxed policy sees each tick and how its answer is validated
workloads.py     workload ids for both problems
scoring.py       per-episode metrics, the score and the feedback in words
evaluator.py     the Evaluator that drives a sandboxed policy over a workload's episodes
"""
