#!/usr/bin/env python3
"""A counter whose state pull-state-operator keeps: the app contract (docs/app-contract.md) in Python's
standard library only. GET /state returns a consistent snapshot, POST /state replaces it atomically, every
answer carries Pull-State-Instance (new with each process start), and after SIGTERM the counter stops while
GET is still served for a few seconds, so a planned move loses nothing."""

import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20  # a restore's body: the state is a few bytes, anything larger is not ours


def env_int(name, default, lo, hi):
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        sys.stderr.write(f"error: {name}={raw!r} is not valid; allowed: a whole number from {lo} to {hi}\n")
        sys.exit(2)
    return value


class App:
    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.counting = True
        self.restores = 0
        self.restored_count = None  # the count of the last restore: what a test compares with the copy
        # New with every process start: the operator never stores the empty state of a restarted process.
        self.instance = uuid.uuid4().hex

    def tick(self, seconds):
        while True:
            time.sleep(seconds)
            with self.lock:
                if not self.counting:
                    return
                self.count += 1


def log(**fields):
    print(json.dumps(fields), flush=True)


def handler_for(app):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # An idle kept-alive connection closes after this: shutdown waits for every connection's thread.
        timeout = 2

        def log_message(self, *args):  # one JSON line per restore is enough
            pass

        def setup(self):
            super().setup()
            # Headers and body leave in two writes: without this, Nagle holds the body until the client's
            # delayed ACK, and every GET takes 40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send(self, status, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Pull-State-Instance", app.instance)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/state":
                with app.lock:
                    body = json.dumps({"count": app.count})
                self.send(200, body)
            elif self.path == "/healthz":
                self.send(200, "ok", "text/plain")
            elif self.path == "/readyz":
                with app.lock:
                    counting = app.counting
                self.send(200 if counting else 503, "ok" if counting else "stopping", "text/plain")
            elif self.path == "/stats":
                with app.lock:
                    body = json.dumps(
                        {
                            "count": app.count,
                            "restores": app.restores,
                            "restoredCount": app.restored_count,
                            "counting": app.counting,
                        }
                    )
                self.send(200, body)
            else:
                self.send(404, '{"error":"not found"}')

        def do_POST(self):
            if self.path != "/state":
                return self.send(404, '{"error":"not found"}')
            try:
                length = int(self.headers.get("Content-Length", "-1"))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                return self.send(400, '{"error":"a Content-Length of at most 1 MiB is needed"}')
            try:
                state = json.loads(self.rfile.read(length))
                count = state["count"]
                valid = isinstance(state, dict) and set(state) == {"count"}
                valid = valid and isinstance(count, int) and not isinstance(count, bool) and count >= 0
            except (ValueError, KeyError, TypeError):
                valid = False
            if not valid:
                return self.send(400, '{"error":"body must be JSON {\\"count\\": <whole number >= 0>}"}')
            with app.lock:
                app.count = count
                app.restores += 1
                app.restored_count = count
                restores = app.restores
            log(msg="state restored", count=count, restores=restores)
            self.send(200, json.dumps({"count": count}))

    return Handler


def main():
    if len(sys.argv) > 1:
        sys.stderr.write(
            "usage: main.py (settings from the environment)\n"
            "  PORT           HTTP port (default 8080)\n"
            "  TICK_MS        milliseconds between increments (default 100)\n"
            "  DRAIN_SECONDS  seconds GET /state is still served after SIGTERM (default 5)\n"
        )
        sys.exit(0 if sys.argv[1] in ("--help", "-h") else 2)
    port = env_int("PORT", 8080, 1, 65535)
    tick_ms = env_int("TICK_MS", 100, 1, 60000)
    drain = env_int("DRAIN_SECONDS", 5, 0, 300)
    app = App()
    server = ThreadingHTTPServer(("", port), handler_for(app))
    # Answers in flight (the last pull's) finish before the process exits: server_close() waits for them.
    server.daemon_threads = False
    server.block_on_close = True

    def on_sigterm(_signum, _frame):
        with app.lock:
            app.counting = False
            count = app.count
        log(msg="SIGTERM: counting stopped, still serving", count=count, drainSeconds=drain)
        threading.Timer(drain, server.shutdown).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    threading.Thread(target=app.tick, args=(tick_ms / 1000,), daemon=True).start()
    log(msg="python-app listening", port=port, instance=app.instance)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
