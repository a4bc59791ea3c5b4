"""A fault-injecting HTTP proxy on 127.0.0.1, in front of a real server (Elasticsearch).

Bulk requests (``POST .../_bulk``) passing through it may, at the configured rates:

- be answered with 429 or 503 without reaching the server (``status_rate``);
- lose some of their items: the proxy forwards the others and answers the missing ones as
  429 ``es_rejected_execution_exception`` items, as an overloaded node does (``partial_rate``);
- be forwarded to the server and then have the client connection dropped before any answer,
  so the client cannot know the request was applied (``drop_rate``).

Every other request is passed through unchanged. Faults are drawn from a seeded RNG, and
`FaultProxy.stats` counts what was injected so tests can check the faults really happened.
``max_faults`` bounds the total, so a run always finishes.

Example::

    with FaultProxy(es.url, status_rate=0.2, partial_rate=0.2, drop_rate=0.1, seed=7) as proxy:
        client = Elasticsearch(proxy.url)
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "proxy-connection",
    "upgrade",
}


class FaultProxy:
    """A threaded HTTP/1.1 proxy to `upstream` that injects bulk faults (see the module docstring)."""

    def __init__(
        self,
        upstream: str,
        *,
        status_rate: float = 0.0,
        partial_rate: float = 0.0,
        drop_rate: float = 0.0,
        partial_share: float = 0.3,
        max_faults: int = 1000,
        seed: int = 0,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 9200
        self.status_rate = status_rate
        self.partial_rate = partial_rate
        self.drop_rate = drop_rate
        self.partial_share = partial_share
        self.max_faults = max_faults
        self.stats: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- decisions (under the lock: handler threads share the RNG) ------------------------------

    def _choose(self) -> str:
        with self._lock:
            if sum(self.stats[k] for k in ("status", "partial", "drop")) >= self.max_faults:
                return "pass"
            roll = self._rng.random()
            if roll < self.status_rate:
                return "status"
            if roll < self.status_rate + self.partial_rate:
                return "partial"
            if roll < self.status_rate + self.partial_rate + self.drop_rate:
                return "drop"
            return "pass"

    def _pick_items(self, n: int) -> set[int]:
        with self._lock:
            count = max(1, int(n * self.partial_share))
            return set(self._rng.sample(range(n), min(count, n)))

    def _status_code(self) -> int:
        with self._lock:
            return self._rng.choice((429, 503))

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="faultproxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.owner.upstream_host, self.owner.upstream_port, timeout=120)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        is_bulk = self.command in ("POST", "PUT") and urlsplit(self.path).path.rstrip("/").endswith("/_bulk")
        gzipped = "gzip" in (self.headers.get("Content-Encoding") or "")
        fault = self.owner._choose() if is_bulk and not gzipped else "pass"
        if fault == "status":
            status = self.owner._status_code()
            self.owner.stats[f"status_{status}"] += 1
            self.owner.stats["status"] += 1
            error = {
                "error": {"type": "es_rejected_execution_exception", "reason": "injected by faultproxy"},
                "status": status,
            }
            self._reply(
                status,
                [("Content-Type", "application/json"), ("X-Elastic-Product", "Elasticsearch")],
                json.dumps(error).encode(),
            )
            return
        if fault == "partial":
            self._partial(body)
            return
        status, headers, payload = self._forward(body)
        if fault == "drop":
            self.owner.stats["drop"] += 1
            self._drop()
            return
        self.owner.stats["passed"] += 1
        self._reply(status, headers, payload)

    def _partial(self, body: bytes) -> None:
        """Forward only some items; answer the rest as 429 items in their original positions."""
        lines = [line for line in body.split(b"\n") if line.strip()]
        items: list[tuple[bytes, bytes | None]] = []
        i = 0
        while i < len(lines):
            action = json.loads(lines[i])
            op = next(iter(action))
            if op == "delete":
                items.append((lines[i], None))
                i += 1
            else:
                items.append((lines[i], lines[i + 1]))
                i += 2
        rejected = self.owner._pick_items(len(items))
        kept = [item for n, item in enumerate(items) if n not in rejected]
        upstream_items: list[Any] = []
        headers = [("Content-Type", "application/json"), ("X-Elastic-Product", "Elasticsearch")]
        if kept:
            forward = b"".join(a + b"\n" + (s + b"\n" if s is not None else b"") for a, s in kept)
            status, headers, payload = self._forward(forward)
            if status >= 300:
                self._reply(status, headers, payload)
                return
            upstream_items = json.loads(payload).get("items", [])
        answer = []
        forwarded = iter(upstream_items)
        for n, (action_line, _) in enumerate(items):
            if n in rejected:
                action = json.loads(action_line)
                op = next(iter(action))
                meta = action[op]
                answer.append(
                    {
                        op: {
                            "_id": meta.get("_id"),
                            "status": 429,
                            "error": {
                                "type": "es_rejected_execution_exception",
                                "reason": "injected by faultproxy",
                            },
                        }
                    }
                )
            else:
                answer.append(next(forwarded))
        self.owner.stats["partial"] += 1
        self.owner.stats["rejected_items"] += len(rejected)
        self._reply(200, headers, json.dumps({"errors": True, "took": 1, "items": answer}).encode())

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()
