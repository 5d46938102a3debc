#!/usr/bin/env python3
"""A tiny OpenID Connect token endpoint for the test bed (stdlib + Debian's openssl, no venv).

    oidc.py --port P --key K.pem [--rogue-key R.pem] --client ID:SECRET[:KIND] ... [--audience A]

POST /token   OAuth 2.0 client-credentials grant (client id and secret by HTTP Basic auth, as
              librdkafka's `sasl.oauthbearer.method=oidc` sends them, or as form fields). Answers
              {"access_token": <RS256 JWT>, "token_type": "bearer", "expires_in": 3600}; a wrong
              secret gets 401 {"error": "invalid_client"}.
GET  /jwks    the JSON Web Key Set with the public half of --key (what the broker's
              OAuthBearerValidatorCallbackHandler fetches through sasl.oauthbearer.jwks.endpoint.url).

A client's KIND says what its tokens are, for the failure tests: `valid` (default), `forged`
(signed with --rogue-key, which the JWKS does not list), `expired` (exp an hour in the past).
Claims: iss, sub (the client id), aud (--audience, default "kafka"), iat, exp, scope. Prints
`ready <port>` once listening; stops on SIGTERM.
"""
import argparse
import base64
import json
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def modulus(key_path: str) -> bytes:
    out = subprocess.run(["openssl", "rsa", "-in", key_path, "-noout", "-modulus"],
                         check=True, capture_output=True, text=True).stdout
    return bytes.fromhex(out.strip().split("=", 1)[1])


def sign(key_path: str, data: bytes) -> bytes:
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_path],
                          input=data, check=True, capture_output=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--rogue-key")
    ap.add_argument("--client", action="append", default=[])
    ap.add_argument("--audience", default="kafka")
    args = ap.parse_args()

    clients = {}
    for c in args.client:
        parts = c.split(":")
        clients[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else "valid")
    issuer = f"http://127.0.0.1:{args.port}"
    jwks = {"keys": [{"kty": "RSA", "kid": "bed-1", "use": "sig", "alg": "RS256",
                      "n": b64url(modulus(args.key)), "e": "AQAB"}]}

    def token(client_id: str, kind: str) -> str:
        now = int(time.time())
        exp = now - 3600 if kind == "expired" else now + 3600
        iat = now - 7200 if kind == "expired" else now
        header = {"alg": "RS256", "typ": "JWT", "kid": "bed-1"}
        claims = {"iss": issuer, "sub": client_id, "aud": args.audience, "iat": iat,
                  "exp": exp, "scope": "kafka"}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        key = args.rogue_key if kind == "forged" else args.key
        return signing_input.decode() + "." + b64url(sign(key, signing_input))

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?")[0] == "/jwks":
                self.reply(200, jwks)
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?")[0] != "/token":
                self.reply(404, {"error": "not_found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            cid, secret = form.get("client_id"), form.get("client_secret")
            auth = self.headers.get("Authorization") or ""
            if auth.lower().startswith("basic "):
                cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            if form.get("grant_type") != "client_credentials":
                self.reply(400, {"error": "unsupported_grant_type"})
                return
            known = clients.get(cid or "")
            if known is None or known[0] != secret:
                self.reply(401, {"error": "invalid_client"})
                return
            self.reply(200, {"access_token": token(cid, known[1]), "token_type": "bearer",
                             "expires_in": 3600})

        def log_message(self, fmt: str, *a) -> None:  # one line per request, no secrets
            sys.stderr.write("oidc: %s %s\n" % (self.command, self.path))

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: (server.server_close(), sys.exit(0)))
    print(f"ready {args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
