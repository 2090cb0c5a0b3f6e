"""Kept for existing tests: the in-process candidate (trusted code only) lives in sandbox/inprocess.py."""
from sandbox.inprocess import InProcessCandidate, InProcessSandbox

__all__ = ["InProcessCandidate", "InProcessSandbox"]
