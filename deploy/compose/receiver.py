"""The sample webhook receiver of docker-compose.yml.

It logs every webhook it gets (method, path, webhook-id, body) and answers 200. To watch Hookline
retry, dead-letter and alert, make it misbehave with environment variables:

  RECEIVER_FAIL_PERCENT  share of requests answered 503 (0-100, default 0)
  RECEIVER_DELAY_MS      wait before answering, in milliseconds (default 0)
  RECEIVER_PORT          port to listen on (default 8080)

GET /healthz answers 200 for the container's health check. Standard library only.
"""

import json
import os
import random
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAIL_PERCENT = float(os.environ.get("RECEIVER_FAIL_PERCENT", "0"))
DELAY_SECONDS = float(os.environ.get("RECEIVER_DELAY_MS", "0")) / 1000.0
PORT = int(os.environ.get("RECEIVER_PORT", "8080"))
SHOWN_BODY_BYTES = 2048


class Receiver(BaseHTTPRequestHandler):
    """Answers webhooks; one instance per request."""

    server_version = "hookline-sample-receiver"

    def _answer(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _webhook(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if DELAY_SECONDS > 0:
            time.sleep(DELAY_SECONDS)
        failing = random.uniform(0, 100) < FAIL_PERCENT
        status = 503 if failing else 200
        print(
            f"{self.command} {self.path} -> {status} "
            f"webhook-id={self.headers.get('webhook-id', '-')} "
            f"{body[:SHOWN_BODY_BYTES].decode('utf-8', 'replace')}",
            flush=True,
        )
        self._answer(status, {"ok": not failing})

    do_POST = _webhook
    do_PUT = _webhook
    do_PATCH = _webhook

    def do_GET(self):
        if self.path == "/healthz":
            self._answer(200, {"ok": True})
        else:
            self._answer(404, {"ok": False})

    def log_message(self, format, *args):
        # Each webhook is printed once by _webhook; health checks stay out of the log.
        pass


def main():
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Receiver)
    print(f"Sample receiver listening on :{PORT} (fail {FAIL_PERCENT}%, delay {DELAY_SECONDS}s)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
