#!/usr/bin/env python3
"""A webhook receiver for trying out Canopy's alerting (docs/alerting.md).

Listens on 127.0.0.1:9095 (or the port given), prints every notification it
receives (Alertmanager's webhook payload, version 4) and checks its signature:
X-Canopy-Signature is "sha256=<hex HMAC-SHA256>" keyed by the receiver's secret,
computed over "<X-Canopy-Timestamp>.<body>". A bad or stale signature is
answered 401 (Canopy retries, then dead-letters it).

    WEBHOOK_SECRET=s3cret python3 scripts/webhook-receiver.py [port]

Standard library only; for development, not production.
"""

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("WEBHOOK_SECRET", "").encode()
TOLERANCE = 300  # seconds a signed timestamp may be off


def verify(secret: bytes, ts_header: str, sig_header: str, body: bytes) -> str:
    """Returns "" when the signature is valid, else why not."""
    if not secret:
        return ""  # no secret configured: nothing to check
    try:
        ts = int(ts_header)
    except (TypeError, ValueError):
        return "missing or bad X-Canopy-Timestamp"
    if abs(time.time() - ts) > TOLERANCE:
        return "timestamp too old or in the future (replay?)"
    if not sig_header or not sig_header.startswith("sha256="):
        return "missing or bad X-Canopy-Signature"
    want = hmac.new(secret, ts_header.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, sig_header[len("sha256="):]):
        return "signature mismatch"
    return ""


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        problem = verify(SECRET, self.headers.get("X-Canopy-Timestamp"),
                         self.headers.get("X-Canopy-Signature"), body)
        try:
            msg = json.loads(body)
        except ValueError:
            msg = None
        stamp = time.strftime("%H:%M:%S")
        if problem:
            print(f"{stamp} REFUSED ({problem})", flush=True)
            self.send_response(401)
            self.end_headers()
            return
        if msg is None:
            print(f"{stamp} not JSON: {body[:200]!r}", flush=True)
            self.send_response(400)
            self.end_headers()
            return
        signed = "signature ok" if SECRET else "unsigned"
        print(f"{stamp} {msg.get('status', '?').upper()} receiver={msg.get('receiver')} "
              f"group={msg.get('groupLabels')} ({signed})", flush=True)
        for a in msg.get("alerts", []):
            labels = a.get("labels", {})
            print(f"  - {a.get('status')}: {labels.get('alertname')} "
                  f"{ {k: v for k, v in labels.items() if k != 'alertname'} } "
                  f"{a.get('annotations', {}).get('summary', '')}", flush=True)
        print(json.dumps(msg, indent=2), flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, fmt, *args):  # the notifications are the log
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9095
    print(f"webhook receiver on http://127.0.0.1:{port}/ "
          f"({'verifying signatures' if SECRET else 'no WEBHOOK_SECRET: not verifying'})", flush=True)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
