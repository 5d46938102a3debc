#!/usr/bin/env python3
"""Dump the true current state of MySQL / MariaDB tables as canonical JSON lines.

    mysql_state.py [--url URL] [--out FILE] --database DB [table ...]

One line per row, tables in the order given (all base tables of DB, by name, when no table is
named), rows sorted by primary key:

    {"table":"db.table","row":{"col":value,...}}

Columns appear in table order. Values come from the server itself (never from Debezium), read as
the server's own text where there is one (CAST(... AS CHAR), session time zone UTC), and are
rendered by the rules of tests/bed/pg_state.py, adapted to MySQL's types, so that a row decant
decoded from Debezium's MariaDB/MySQL connector (defaults, plus
bigint.unsigned.handling.mode=precise) can be compared with them:

  tinyint/smallint/mediumint/int/bigint, signed or unsigned
                               JSON number (bigint unsigned up to 18446744073709551615, exact;
                               decant renders it from Debezium's precise Decimal(20,0) as the
                               decimal string "18446744073709551615": compare by text)
  tinyint(1) (BOOL)            JSON number, like any tinyint: Debezium sends INT16, not boolean
  bit(1)                       true/false (Debezium: BOOLEAN)
  bit(n), n > 1                standard base64 of the value's ceil(n/8) bytes in LITTLE-endian
                               order: Debezium's io.debezium.data.Bits (b'1010101011' -> "qwI=")
  decimal(p,s)                 string with exactly s fraction digits ("12.30")
  float                        JSON number in the server's text (6 significant digits: FLOAT's
                               snapshot value is that text; pick values it keeps exactly)
  double                       JSON number in the server's shortest round-trip text
  date                         "YYYY-MM-DD"
  time, time(n)                MySQL's own text of the signed span, hours beyond 24 kept:
                               "-838:59:59", "838:59:59", "-00:00:00.000001", "25:00:00"; the
                               fraction only when non-zero, then 6 digits ("-01:30:00.500000")
  datetime(n)                  "YYYY-MM-DDTHH:MM:SS[.ffffff]" (fraction as for time)
  timestamp(n)                 the instant in UTC: "YYYY-MM-DDTHH:MM:SS[.ffffff]Z"
  year                         JSON number
  enum                         the label; set: the labels joined by "," in definition order
  json                         MariaDB stores JSON as LONGTEXT with a json_valid() check, and
                               Debezium's MariaDB connector sends it as a plain string: the text
                               exactly as stored (not re-serialised). MySQL's own JSON type
                               (data_type json; Debezium's io.debezium.data.Json, which decant
                               embeds) is rendered as the JSON value, numbers keeping their text
                               (untested: the bed has no MySQL server)
  char/varchar/text            string
  binary/varbinary/blob        standard base64 with padding ("" for an empty value)
  geometry (any kind)          {"wkb": base64 of ST_AsWKB (little-endian WKB, no SRID prefix),
                               "srid": ST_SRID, or null when 0}: Debezium's Geometry struct
  NULL                         null

Needs PyMySQL (the test-bed venv: $DECANT_PY). Default URL: $DECANT_MYSQL_URL or
mysql://decant:decant@127.0.0.1:3306.
"""

import argparse
import base64
import json
import os
import sys
from urllib.parse import unquote, urlparse

import pymysql

from canonical_json import Raw, dumps


def norm_frac(text):
    """'12:34:56.789000' -> '12:34:56.789000'; '12:34:56.000000' / '12:34:56' -> '12:34:56'."""
    base, dot, frac = text.partition(".")
    if not dot or int(frac) == 0:
        return base
    return f"{base}.{frac.ljust(6, '0')[:6]}"


def b64(b):
    return base64.b64encode(bytes(b)).decode("ascii")


def bits_le(raw, width):
    """BIT(n) as the server returns it (big-endian bytes) -> Debezium's little-endian bytes."""
    value = int.from_bytes(bytes(raw), "big")
    return b64(value.to_bytes((width + 7) // 8, "little"))


def number(text):
    return Raw(text)


def json_value(text):
    """Parse JSON keeping the exact text of numbers and the order of object members."""
    return json.loads(text, parse_float=Raw, parse_int=Raw, parse_constant=lambda c: Raw(json.dumps(c)))


def geometry(text):
    """'<hex wkb>|<srid>' (built in SQL) -> {"wkb", "srid"}."""
    wkb, _, srid = text.partition("|")
    return {"wkb": b64(bytes.fromhex(wkb)), "srid": None if int(srid) == 0 else int(srid)}


def column_plan(name, data_type, column_type):
    """(SQL expression over the quoted column, python renderer) for one column."""
    q = "`" + name.replace("`", "``") + "`"
    text = f"cast({q} as char)"
    if data_type in ("tinyint", "smallint", "mediumint", "int", "bigint", "year", "float", "double"):
        return text, number
    if data_type == "decimal":
        return text, str
    if data_type == "bit":
        width = int(column_type[column_type.index("(") + 1:column_type.index(")")])
        if width == 1:
            return f"{q} + 0", lambda v: int(v) == 1
        return q, lambda v: bits_le(v, width)
    if data_type == "date":
        return text, str
    if data_type == "time":
        return text, norm_frac
    if data_type == "datetime":
        return text, lambda t: norm_frac(t.replace(" ", "T", 1))
    if data_type == "timestamp":
        return text, lambda t: norm_frac(t.replace(" ", "T", 1)) + "Z"
    if data_type in ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"):
        return q, b64
    if data_type in ("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                     "multipolygon", "geometrycollection"):
        return f"case when {q} is null then null else concat(hex(ST_AsWKB({q})), '|', ST_SRID({q})) end", geometry
    if data_type == "json":
        return text, json_value
    # char, varchar, *text (MariaDB's JSON included), enum, set
    return q, str


def table_rows(conn, db, table):
    cur = conn.cursor()
    cur.execute(
        "select column_name, data_type, column_type from information_schema.columns"
        " where table_schema = %s and table_name = %s order by ordinal_position",
        (db, table),
    )
    cols = cur.fetchall()
    if not cols:
        raise SystemExit(f"mysql_state.py: no table {db}.{table}")
    cur.execute(
        "select column_name from information_schema.key_column_usage"
        " where table_schema = %s and table_name = %s and constraint_name = 'PRIMARY'"
        " order by ordinal_position",
        (db, table),
    )
    pk = [r[0] for r in cur.fetchall()] or [c[0] for c in cols]
    plans = [(name, *column_plan(name, dt.lower(), ct.lower())) for name, dt, ct in cols]
    quote = lambda n: "`" + n.replace("`", "``") + "`"
    select = ", ".join(expr for _, expr, _ in plans)
    order = ", ".join("t." + quote(n) for n in pk)
    cur.execute(f"select {select} from {quote(db)}.{quote(table)} as t order by {order}")
    for rec in cur.fetchall():
        yield f"{db}.{table}", {name: (None if v is None else render(v)) for (name, _, render), v in zip(plans, rec)}


def connect(url):
    u = urlparse(url)
    if u.scheme not in ("mysql", "mariadb"):
        raise SystemExit(f"mysql_state.py: not a mysql:// URL: {url}")
    return pymysql.connect(
        host=u.hostname or "127.0.0.1",
        port=u.port or 3306,
        user=unquote(u.username or "root"),
        password=unquote(u.password or ""),
        charset="utf8mb4",
        autocommit=True,
        # every value arrives as the server's text (or bytes): no driver conversion in between
        conv={},
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("DECANT_MYSQL_URL", "mysql://decant:decant@127.0.0.1:3306"))
    ap.add_argument("--out", help="output file (default stdout)")
    ap.add_argument("--database", required=True)
    ap.add_argument("tables", nargs="*")
    args = ap.parse_args()

    conn = connect(args.url)
    with conn.cursor() as cur:
        cur.execute("set time_zone = '+00:00'")
        tables = list(args.tables)
        if not tables:
            cur.execute(
                "select table_name from information_schema.tables"
                " where table_schema = %s and table_type = 'BASE TABLE' order by binary table_name",
                (args.database,),
            )
            tables = [r[0] for r in cur.fetchall()]
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    try:
        for t in tables:
            for name, row in table_rows(conn, args.database, t):
                out.write('{"table":' + json.dumps(name, ensure_ascii=False) + ',"row":' + dumps(row) + "}\n")
    finally:
        if args.out:
            out.close()
        conn.close()


if __name__ == "__main__":
    main()
