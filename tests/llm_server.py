"""A real OpenAI-compatible HTTP server on 127.0.0.1 with scripted answers, for tests and benches.

It serves POST /v1/chat/completions (and GET /v1/models) from a thread, so the real litellm/openai client
path is exercised end to end: sockets, JSON, status codes, timeouts. Each request takes the next Reply of
the script (or, once the script is used up, the default, which may be a function of the request body).
Everything served is logged, so a test can compare what the server did with what the store recorded.
"""
from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Union


@dataclass(frozen=True)
class Reply:
    text: str = ""                    # the answer; with an error status, the error's message
    status: int = 200                 # 429, 500, 503 ... are sent as OpenAI-style error bodies
    delay_s: float = 0.0              # sleep before answering (slow model, or past the client timeout)
    finish_reason: str = "stop"       # "length" simulates a truncated answer
    kind: str = ""                    # a label for the test's bookkeeping


Responder = Callable[[dict], Reply]


class ScriptedServer:
    def __init__(self, script: list[Reply] | None = None, default: Union[Reply, Responder] = Reply(""),
                 context_window: int | None = None) -> None:
        self.script = list(script or [])
        self.context_window = context_window  # reported as vLLM does (max_model_len in /v1/models)
        self.default = default
        self.requests: list[dict] = []
        self.served: list[Reply] = []
        self.hangups: list[float] = []    # seconds into a delayed reply at which its client hung up
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="llm-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def next_reply(self, body: dict) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self.script:
                reply = self.script.pop(0)
            else:
                reply = self.default(body) if callable(self.default) else self.default
            self.served.append(reply)
            return reply

    def count(self, kind: str) -> int:
        return sum(r.kind == kind for r in self.served)


def _handler(server: ScriptedServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                model = {"id": "scripted", "object": "model"}
                if server.context_window:
                    model["max_model_len"] = server.context_window
                self._send(200, {"object": "list", "data": [model]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(size) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            reply = server.next_reply(body)
            if reply.delay_s and self._client_hung_up(reply.delay_s):
                return  # like a real server that notices the disconnect: stop "generating"
            if reply.status != 200:
                self._send(reply.status, {"error": {"message": reply.text or f"scripted {reply.status}",
                                                    "type": "server_error", "code": str(reply.status)}})
                return
            self._send(200, _completion(body, reply))

        def _client_hung_up(self, seconds: float) -> bool:
            """Sleep `seconds` while watching the connection; True (and logged) if the client closed it."""
            t0 = time.monotonic()
            while (left := t0 + seconds - time.monotonic()) > 0:
                readable, _, _ = select.select([self.connection], [], [], min(left, 0.02))
                if not readable:
                    continue
                try:
                    closed = not self.connection.recv(1, socket.MSG_PEEK)
                except OSError:
                    closed = True
                if closed:
                    server.hangups.append(time.monotonic() - t0)
                    self.close_connection = True
                    return True
                time.sleep(min(left, 0.02))  # bytes of a next request: not a hang-up
            return False

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

    return Handler


def _completion(body: dict, reply: Reply) -> dict:
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
    prompt_tokens, completion_tokens = max(1, prompt_chars // 4), max(1, len(reply.text) // 4)
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": reply.finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


# ---------------------------------------------------------------- answers for the toy problem

_CURRENT = re.compile(r"Current program.*?\ba = ([-0-9.e]+)", re.S)


def toy_diff(body: dict, step: float = 0.5) -> Reply:
    """A valid SEARCH/REPLACE that moves the current program's `a` towards 3 (the toy's true value)."""
    text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    m = _CURRENT.search(text)
    if m is None:
        return Reply("I could not find the current program.", kind="garbage")
    old = m.group(1)
    new = repr(round(float(old) + step, 6))
    return Reply(f"Raising a.\n```\n<<<<<<< SEARCH\n    a = {old}\n=======\n    a = {new}\n>>>>>>> REPLACE\n```\n",
                 kind="valid")


NO_MATCH = Reply("<<<<<<< SEARCH\n    c = 7\n=======\n    c = 8\n>>>>>>> REPLACE\n", kind="no_match")
GARBAGE = Reply("As an AI I think the program is already quite good.", kind="garbage")
EMPTY = Reply("", kind="empty")
RATE_LIMITED = Reply(status=429, kind="429")
SERVER_ERROR = Reply(status=500, kind="500")
TRUNCATED = Reply("<<<<<<< SEARCH\n    a = 0.5\n=======\n    a = ", finish_reason="length", kind="truncated")


def slow(seconds: float) -> Reply:
    return Reply("too late", delay_s=seconds, kind="slow")
