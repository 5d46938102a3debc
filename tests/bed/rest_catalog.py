"""An Iceberg REST catalog server for the test bed.

No REST catalog server can be installed from this machine's registries (the usual fixtures are
Docker images), so this serves **pyiceberg's SQL catalog** over the REST catalog protocol
(https://github.com/apache/iceberg/blob/main/open-api/rest-catalog-open-api.yaml). Everything a
REST catalog decides is pyiceberg's own code, not decant's and not this file's: parsing the
`CommitTableRequest`, checking its requirements against the current metadata (409 on a miss),
applying the updates, writing the next metadata file and the compare-and-swap of the pointer.
This file only routes HTTP to it, one request at a time.

    python rest_catalog.py --port 8181 --catalog-db /tmp/rest.db --warehouse /tmp/wh \
        [--prefix p] [--token T] [--credential id:secret [--token-ttl S]]

`--token` makes every request need `Authorization: Bearer T`; `--credential` additionally serves
the OAuth2 client-credentials endpoint (`/v1/oauth/tokens`) that hands out T for that client, or
with `--token-ttl` a fresh token per request that expires after S seconds (401 afterwards).
`--prefix` is advertised through `/v1/config` overrides, so clients must use it in their paths.
Prints `ready <port>` on stdout once it listens.
"""

import argparse
import json
import os
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import TypeAdapter
from pyiceberg.catalog.rest import (
    ConfigResponse,
    CreateTableRequest,
    ListNamespaceResponse,
    ListTableResponseEntry,
    ListTablesResponse,
    NamespaceResponse,
    TableResponse,
)
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
from pyiceberg.table import CommitTableRequest
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER


class HttpError(Exception):
    def __init__(self, status, kind, message):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def namespace_of(segment):
    # Multi-level namespaces travel as one path segment joined by the unit separator.
    return tuple(unquote(segment).split("\x1f"))


class Catalog:
    def __init__(self, args):
        os.makedirs(args.warehouse, exist_ok=True)
        self.sql = SqlCatalog(
            "rest",
            uri=f"sqlite:///{os.path.abspath(args.catalog_db)}",
            warehouse=f"file://{os.path.abspath(args.warehouse)}",
        )
        self.prefix = args.prefix
        self.token = args.token
        self.credential = args.credential
        self.token_ttl = args.token_ttl
        self.issued = {}  # token -> expiry (monotonic seconds)
        self.lock = threading.Lock()
        self.commits = 0
        self.conflicts = 0

    def table_response(self, table):
        return TableResponse(
            **{"metadata-location": table.metadata_location, "metadata": table.metadata, "config": {}}
        ).model_dump_json()

    def route(self, method, path, query, body):
        parts = [p for p in path.split("/") if p]
        if parts[:1] != ["v1"]:
            raise HttpError(404, "NotFoundException", f"no route {path}")
        parts = parts[1:]
        if parts == ["config"]:
            overrides = {"prefix": self.prefix} if self.prefix else {}
            return 200, ConfigResponse(defaults={}, overrides=overrides).model_dump_json()
        if parts == ["oauth", "tokens"] and method == "POST":
            return self.oauth(body)
        if self.prefix:
            if parts[:1] != [self.prefix]:
                raise HttpError(404, "NotFoundException", f"expected prefix {self.prefix!r} in {path}")
            parts = parts[1:]
        if parts == ["namespaces"]:
            if method == "GET":
                parent = query.get("parent", [None])[0]
                names = self.sql.list_namespaces(namespace_of(parent) if parent else ())
                return 200, ListNamespaceResponse(namespaces=names).model_dump_json()
            if method == "POST":
                req = json.loads(body)
                ns = tuple(req["namespace"])
                try:
                    self.sql.create_namespace(ns, req.get("properties") or {})
                except NamespaceAlreadyExistsError as e:
                    raise HttpError(409, "AlreadyExistsException", str(e))
                return 200, NamespaceResponse(namespace=ns, properties=req.get("properties") or {}).model_dump_json()
        if len(parts) == 2 and parts[0] == "namespaces":
            ns = namespace_of(parts[1])
            props = self.sql.load_namespace_properties(ns)
            if method == "HEAD":
                return 204, None
            if method == "GET":
                return 200, NamespaceResponse(namespace=ns, properties=props).model_dump_json()
        if len(parts) == 3 and parts[0] == "namespaces" and parts[2] == "tables":
            ns = namespace_of(parts[1])
            if method == "GET":
                if not self.sql.namespace_exists(ns):
                    raise NoSuchNamespaceError(f"Namespace does not exist: {ns}")
                entries = [ListTableResponseEntry(namespace=i[:-1], name=i[-1]) for i in self.sql.list_tables(ns)]
                return 200, ListTablesResponse(identifiers=entries).model_dump_json()
            if method == "POST":
                fields = {"location": None, "partition-spec": None, "write-order": None, **json.loads(body)}
                req = CreateTableRequest.model_validate(fields)
                if req.stage_create:
                    raise HttpError(400, "BadRequestException", "staged creation is not served here")
                table = self.sql.create_table(
                    ns + (req.name,),
                    schema=req.table_schema,
                    location=req.location,
                    partition_spec=req.partition_spec or UNPARTITIONED_PARTITION_SPEC,
                    sort_order=req.write_order or UNSORTED_SORT_ORDER,
                    properties=req.properties,
                )
                return 200, self.table_response(table)
        if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "tables":
            ident = namespace_of(parts[1]) + (unquote(parts[3]),)
            if method == "HEAD":
                if not self.sql.table_exists(ident):
                    raise NoSuchTableError(f"Table does not exist: {ident}")
                return 204, None
            if method == "GET":
                return 200, self.table_response(self.sql.load_table(ident))
            if method == "DELETE":
                self.sql.drop_table(ident)
                return 204, None
            if method == "POST":
                req = TypeAdapter(CommitTableRequest).validate_json(body)
                table = self.sql.load_table(ident)
                try:
                    resp = self.sql.commit_table(table, req.requirements, req.updates)
                except CommitFailedException:
                    self.conflicts += 1
                    raise
                self.commits += 1
                return 200, resp.model_dump_json()
        raise HttpError(404, "NotFoundException", f"no route {method} {path}")

    def oauth(self, body):
        form = parse_qs(body.decode())
        given = f"{form.get('client_id', [''])[0]}:{form.get('client_secret', [''])[0]}"
        if not self.credential or form.get("grant_type") != ["client_credentials"] or given != self.credential:
            raise HttpError(401, "NotAuthorizedException", "bad client credentials")
        token = self.token
        reply = {"token_type": "bearer", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}
        if self.token_ttl:
            token = uuid.uuid4().hex
            self.issued[token] = time.monotonic() + self.token_ttl
            reply["expires_in"] = self.token_ttl
        return 200, json.dumps({"access_token": token, **reply})

    def authorized(self, header):
        token = (header or "").removeprefix("Bearer ")
        if not self.token:
            return True
        if token == self.token and not self.token_ttl:
            return True
        return self.issued.get(token, 0) > time.monotonic()


def handler_for(catalog):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            if os.environ.get("REST_CATALOG_LOG"):
                sys.stderr.write("rest-catalog: " + fmt % args + "\n")

        def handle_any(self):
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                is_token = url.path.rstrip("/").endswith("/oauth/tokens")
                with catalog.lock:
                    if not is_token and not catalog.authorized(self.headers.get("Authorization")):
                        raise HttpError(401, "NotAuthorizedException", "missing, wrong or expired bearer token")
                    status, payload = catalog.route(self.command, url.path, parse_qs(url.query), body)
            except HttpError as e:
                status, payload = e.status, error_body(e.status, e.kind, e.message)
            except (NoSuchTableError, NoSuchNamespaceError) as e:
                kind = "NoSuchTableException" if isinstance(e, NoSuchTableError) else "NoSuchNamespaceException"
                status, payload = 404, error_body(404, kind, str(e))
            except (TableAlreadyExistsError, NamespaceAlreadyExistsError) as e:
                status, payload = 409, error_body(409, "AlreadyExistsException", str(e))
            except CommitFailedException as e:
                status, payload = 409, error_body(409, "CommitFailedException", str(e))
            except Exception as e:  # a malformed request: say what pyiceberg refused
                traceback.print_exc(file=sys.stderr)
                status, payload = 400, error_body(400, "BadRequestException", f"{type(e).__name__}: {e}")
            data = payload.encode() if payload else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_HEAD = do_DELETE = handle_any

    return Handler


def error_body(code, kind, message):
    return json.dumps({"error": {"message": message, "type": kind, "code": code}})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--catalog-db", required=True)
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--token", default="")
    ap.add_argument("--credential", default="")
    ap.add_argument("--token-ttl", type=int, default=0)
    args = ap.parse_args()
    if args.credential and not args.token:
        args.token = uuid.uuid4().hex
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(Catalog(args)))
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
