"""The program that runs inside the sandbox: import the candidate, then serve calls over one descriptor.

Requests:  {"op": "call", "fn": name, "args": [...]}
           {"op": "empty", "args": []}  the path of a call (decode, dispatch, encode) without candidate code:
                                        the baseline the trusted side subtracts from timed calls
           {"op": "ping"}               the bare transport, answered without decoding (benchmarks)
Answers:   {"ok": True, "result": ...}
           {"ok": False, "kind": "exception" | "import_error" | "state", "type": ..., "errno": ..., "error": ...,
            "tb": ...}
The first frame the runner sends is a hello: {"ok": True} once the candidate imported and defines every
required entry function, or an import_error. A top-level call argument that is a state delta
(sandbox/state_mirror.py) reaches the candidate as the whole table it rebuilds.

Only stdlib, numpy, msgpack, sandbox.protocol and sandbox.state_mirror may be used here. No simulator or
scoring code ever lives in the sandbox: the candidate sees only what a call passes it.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from types import ModuleType
from typing import Any

from sandbox import protocol, state_mirror

CANDIDATE_MODULE = "candidate"
ERROR_CHARS = 500
TB_CHARS = 20_000
EXIT_MEMORY = 3  # could not even report a MemoryError


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line[:ERROR_CHARS]


def _failure(kind: str, exc: BaseException | None, message: str = "") -> dict[str, Any]:
    answer: dict[str, Any] = {"ok": False, "kind": kind}
    if exc is not None:
        answer["type"] = type(exc).__name__
        err = getattr(exc, "errno", None)
        answer["errno"] = err if isinstance(err, int) else None
        message = message or _one_line(f"{type(exc).__name__}: {exc}")
        try:
            answer["tb"] = traceback.format_exc()[-TB_CHARS:]
        except MemoryError:
            answer["tb"] = ""
    answer["error"] = message
    return answer


def _import(path: str) -> tuple[ModuleType | None, dict[str, Any] | None]:
    try:
        spec = importlib.util.spec_from_file_location(CANDIDATE_MODULE, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[CANDIDATE_MODULE] = module
        spec.loader.exec_module(module)
        return module, None
    except BaseException as e:  # noqa: BLE001 - any failure to import is the candidate's import error
        return None, _failure("import_error", e, _one_line(f"import failed: {type(e).__name__}: {e}"))


def missing_entries(module: ModuleType, entries: tuple[str, ...] | list[str]) -> str | None:
    """Why `module` cannot serve `entries` (a one-line message naming each missing function), or None."""
    missing = [e for e in entries if not callable(getattr(module, e, None))]
    if not missing:
        return None
    names = ", ".join(f"'{m}'" for m in missing)
    return (f"the candidate defines no function{'s' if len(missing) > 1 else ''} {names} "
            f"(required: {', '.join(entries)})")


def _nothing() -> None:
    """What an "empty" request calls: no candidate code, the rest of a call's path unchanged."""


class Runner:
    """Serves one candidate module on descriptor `fd`; only the original process may answer."""

    def __init__(self, fd: int, max_frame_bytes: int) -> None:
        self.fd = fd
        self.owner = os.getpid()
        self.reader = protocol.FrameReader(fd, max_frame_bytes)
        self.module: ModuleType | None = None
        self.mirror = state_mirror.Mirror()
        self.ping_request = protocol.encode({"op": "ping"})
        self.ok_answer = protocol.encode({"ok": True})
        # A process the candidate forks must never speak on (or hold open) the channel.
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass

    def send(self, answer: dict[str, Any]) -> None:
        if os.getpid() != self.owner:
            os._exit(1)  # a forked copy of the runner unwound to here: die silently
        try:
            payload = protocol.encode(answer)
        except TypeError as e:
            payload = protocol.encode(_failure("exception", None, _one_line(
                f"the return value cannot be sent: {e}")))
        protocol.send_frame(self.fd, payload)

    def handle(self, request: Any) -> dict[str, Any]:
        op = request.get("op") if type(request) is dict else None
        args = request.get("args", []) if op else None
        if op not in ("call", "empty") or type(args) is not list:
            return _failure("exception", None, f"runner got an unknown request {str(request)[:80]}")
        try:  # before the lookup: the mirror follows every delta the trusted side sent
            args = self.mirror.resolve(args)
        except state_mirror.StateError as e:
            return _failure("state", None, _one_line(str(e)))
        except MemoryError:
            raise  # the serve loop reports it as the candidate's memory limit
        except Exception as e:  # noqa: BLE001 - a malformed delta must not take the runner down
            return _failure("state", None, _one_line(f"malformed state delta: {type(e).__name__}: {e}"))
        if op == "empty":
            fn = _nothing
        else:
            name = request.get("fn")
            fn = getattr(self.module, name, None) if isinstance(name, str) else None
            if not callable(fn):
                return _failure("import_error", None, f"the candidate has no function '{name}'")
        try:
            result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - SystemExit etc. from a candidate is its exception
            if os.getpid() != self.owner:
                os._exit(1)
            return _failure("exception", e)
        finally:
            _flush()
        return {"ok": True, "result": result}

    def serve(self, candidate_path: str, entries: tuple[str, ...] = ()) -> int:
        self.module, error = _import(candidate_path)
        if error is None and (missing := missing_entries(self.module, entries)):
            error = _failure("import_error", None, missing)
        _flush()
        self.send(error or {"ok": True})
        if error:
            return 0
        while True:
            try:
                payload = self.reader.read()
            except protocol.PeerClosed:
                return 0
            if payload == self.ping_request:  # fast path: the empty round trip skips decoding
                protocol.send_frame(self.fd, self.ok_answer)
                continue
            try:
                self.send(self.handle(protocol.decode(payload)))
            except MemoryError:
                try:
                    self.send(_failure("exception", MemoryError("while sending the answer")))
                except MemoryError:
                    return EXIT_MEMORY


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a full output file must not kill the answer
            pass


def serve(fd: int, candidate_path: str, max_frame_bytes: int, entries: tuple[str, ...] = ()) -> int:
    """Entry point inside the sandbox (forked child or container); returns the exit code. `entries`: the
    functions the candidate must define, checked right after the import."""
    names = tuple(e for e in entries if isinstance(e, str))
    return Runner(fd, max_frame_bytes).serve(candidate_path, names)
