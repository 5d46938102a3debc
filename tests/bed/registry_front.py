"""TLS fronts for the bed's Schema Registry: what clients meet in front of real registries.

    registry_front.py --upstream http://127.0.0.1:P/apis/ccompat/v7 --cert server.pem
        --key server.key --ca ca.pem --basic HOST:PORT:USER:PASSWORD
        --bearer HOST:PORT:TOKEN --mtls HOST:PORT

Three HTTPS listeners, each forwarding every request (method, path under the upstream's base
path, query, body, content type) to the registry and its answer back:
  --basic   requires `Authorization: Basic base64(USER:PASSWORD)` (Confluent Cloud's API key)
  --bearer  requires `Authorization: Bearer TOKEN`
  --mtls    requires a client certificate signed by --ca (TLS handshake fails without one)
A missing or wrong credential gets 401 with Confluent's error body ({"error_code": 401, …}).
The listeners' base URL is https://HOST:PORT (no path): clients use it as the registry URL.
Stdlib only. Prints "ready" once all listeners are bound; stops on SIGTERM.
"""

import argparse
import base64
import http.client
import json
import signal
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(upstream, check):
    up = urllib.parse.urlsplit(upstream)

    class Front(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: one line per request on stderr is noise
            pass

        def reply(self, status, body, ctype="application/vnd.schemaregistry.v1+json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if not check(self.headers.get("Authorization")):
                err = {"error_code": 401, "message": "Unauthorized"}
                self.reply(401, json.dumps(err).encode())
                return
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() in ("content-type", "accept")}
            try:
                conn.request(self.command, up.path.rstrip("/") + self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.reply(resp.status, data, resp.getheader("Content-Type") or "application/json")
            except OSError as e:
                err = {"error_code": 50003, "message": f"upstream: {e}"}
                self.reply(503, json.dumps(err).encode())
            finally:
                conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = forward

    return Front


def serve(addr, handler, ctx):
    host, port = addr
    srv = ThreadingHTTPServer((host, int(port)), handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--basic", required=True, help="HOST:PORT:USER:PASSWORD")
    ap.add_argument("--bearer", required=True, help="HOST:PORT:TOKEN")
    ap.add_argument("--mtls", required=True, help="HOST:PORT")
    args = ap.parse_args()

    def server_ctx(require_client_cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.ca)
        return ctx

    bhost, bport, user, password = args.basic.split(":", 3)
    want_basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    thost, tport, token = args.bearer.split(":", 2)
    mhost, mport = args.mtls.split(":")
    servers = [
        serve((bhost, bport), make_handler(args.upstream, lambda a: a == want_basic), server_ctx(False)),
        serve((thost, tport), make_handler(args.upstream, lambda a: a == f"Bearer {token}"), server_ctx(False)),
        serve((mhost, mport), make_handler(args.upstream, lambda a: True), server_ctx(True)),
    ]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    for s in servers:
        s.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
