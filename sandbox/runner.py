"""The program that runs inside the sandbox: import the candidate, then serve calls over one descriptor.

Requests:  {"op": "call", "fn": name, "args": [...]}  or  {"op": "ping"}
Answers:   {"ok": True, "result": ...}
           {"ok": False, "kind": "exception" | "import_error", "type": ..., "errno": ..., "error": ..., "tb": ...}
The first frame the runner sends is a hello: {"ok": True} once the candidate imported, or an import_error.

Only stdlib, numpy, msgpack and sandbox.protocol may be used here. No simulator or scoring code ever lives
in the sandbox: the candidate sees only what a call passes it.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from types import ModuleType
from typing import Any

from sandbox import protocol

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


class Runner:
    """Serves one candidate module on descriptor `fd`; only the original process may answer."""

    def __init__(self, fd: int, max_frame_bytes: int) -> None:
        self.fd = fd
        self.owner = os.getpid()
        self.reader = protocol.FrameReader(fd, max_frame_bytes)
        self.module: ModuleType | None = None
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
        if not isinstance(request, dict) or request.get("op") != "call":
            return _failure("exception", None, f"runner got an unknown request {str(request)[:80]}")
        name = request.get("fn")
        fn = getattr(self.module, name, None) if isinstance(name, str) else None
        if not callable(fn):
            return _failure("import_error", None, f"the candidate has no function '{name}'")
        try:
            result = fn(*request.get("args", []))
        except BaseException as e:  # noqa: BLE001 - SystemExit etc. from a candidate is its exception
            if os.getpid() != self.owner:
                os._exit(1)
            return _failure("exception", e)
        finally:
            _flush()
        return {"ok": True, "result": result}

    def serve(self, candidate_path: str) -> int:
        self.module, error = _import(candidate_path)
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


def serve(fd: int, candidate_path: str, max_frame_bytes: int) -> int:
    """Entry point inside the forked child; returns the exit code."""
    return Runner(fd, max_frame_bytes).serve(candidate_path)
