#!/usr/bin/env python3
"""Dump the true current state of PostgreSQL tables as canonical JSON lines.

    pg_state.py [--url URL] [--out FILE] [--schema S] [schema.]table ...

One line per row, tables in the order given (all ordinary tables of --schema, by name, when no
table is named), rows sorted by primary key (text key columns in "C" collation):

    {"table":"schema.table","row":{"col":value,...}}

Columns appear in table order. Values come from PostgreSQL itself (never from Debezium) and are
rendered canonically so that a Debezium-decoded row can be compared with them:

  smallint/int/bigint          JSON number
  real/double precision        JSON number in PostgreSQL's shortest round-trip text (real: 3.14);
                               NaN/Infinity/-Infinity as the strings "NaN"/"Infinity"/"-Infinity"
  boolean                      true/false
  numeric(p,s)                 string with exactly s fraction digits ("12.30")
  numeric                      PostgreSQL's text ("4.82")
  money                        decimal string via ::numeric ("-12.34")
  date                         "YYYY-MM-DD"
  time, time(n)                "HH:MM:SS", or "HH:MM:SS.ffffff" (6 digits) when the fraction is non-zero
  timetz                       same, converted to UTC, with a trailing "Z"
  timestamp                    "YYYY-MM-DDTHH:MM:SS[.ffffff]"; "infinity"/"-infinity"
  timestamptz                  same in UTC with a trailing "Z"; "infinity"/"-infinity"
  interval                     integer microseconds with Debezium's month of 30.4375 days:
                               (years*12 + months) * 2629800 s + days * 86400 s + time part
                               (NOT extract(epoch ...), which counts a month as 30 days)
  uuid                         lower-case text
  json/jsonb                   the JSON value itself (numbers keep their exact text)
  xml/text/varchar/char/inet/
  cidr/macaddr/enum/other      string (char(n) keeps PostgreSQL's blank padding)
  bytea                        standard base64 with padding, no newlines
  arrays (1-D)                 JSON array of the elements rendered by these rules
  point                        {"x": number, "y": number}
  NULL                         null

Needs psycopg 3 (the test-bed venv: $DECANT_PY). Default URL: $DECANT_PG_URL or
postgresql://postgres@127.0.0.1:5432/postgres.
"""

import argparse
import base64
import json
import os
import re
import sys

import psycopg
from psycopg import sql

from canonical_json import Raw, dumps


def parse_json_text(text):
    """Parse JSON keeping the exact text of numbers and the order of object members."""
    return json.loads(
        text,
        parse_float=Raw,
        parse_int=Raw,
        parse_constant=lambda c: Raw(json.dumps(c)),
        object_pairs_hook=dict,
    )


FRAC = re.compile(r"^(.*?)(?:\.(\d+))?$")


def norm_frac(text):
    """'12:34:56.789' -> '12:34:56.789000'; '12:34:56.000' / '12:34:56' -> '12:34:56'."""
    m = FRAC.match(text)
    base, frac = m.group(1), m.group(2)
    if frac is None or int(frac) == 0:
        return base
    return f"{base}.{frac.ljust(6, '0')}"


TIMETZ = re.compile(r"^(\d\d):(\d\d):(\d\d)(?:\.(\d+))?([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?$")


def timetz_utc(text):
    m = TIMETZ.match(text)
    if not m:
        raise ValueError(f"unexpected timetz text {text!r}")
    h, mi, s, frac, sign, oh, om, os_ = m.groups()
    micros = int((frac or "0").ljust(6, "0")[:6])
    secs = int(h) * 3600 + int(mi) * 60 + int(s)
    off = int(oh) * 3600 + int(om or 0) * 60 + int(os_ or 0)
    secs -= off if sign == "+" else -off
    secs %= 86400
    base = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return (f"{base}.{micros:06d}" if micros else base) + "Z"


def ts_text(text, zulu):
    if text in ("infinity", "-infinity"):
        return text
    if text.endswith(" BC"):
        raise ValueError(f"BC timestamps are not supported: {text!r}")
    return norm_frac(text.replace(" ", "T", 1)) + ("Z" if zulu else "")


# kind -> (SQL expression template over {v}, python renderer)
def _float(t):
    return t if t in ("NaN", "Infinity", "-Infinity") else Raw(t)


def _point(t):
    x, y = t.strip("()").split(",")
    return {"x": _float(x), "y": _float(y)}


INTERVAL_US = (
    "((extract(year from {v}) * 12 + extract(month from {v})) * 2629800000000"
    " + extract(day from {v}) * 86400000000"
    " + extract(hour from {v}) * 3600000000"
    " + extract(minute from {v}) * 60000000"
    " + extract(microseconds from {v}))::numeric(40,0)::text"
)

KINDS = {
    "int": ("{v}::text", Raw),
    "float": ("{v}::text", _float),
    "numeric": ("{v}::text", str),
    "money": ("{v}::numeric::text", str),
    "bool": ("{v}::text", lambda t: t == "true"),
    "date": ("{v}::text", str),
    "time": ("{v}::text", norm_frac),
    "timetz": ("{v}::text", timetz_utc),
    "timestamp": ("{v}::text", lambda t: ts_text(t, False)),
    "timestamptz": ("({v} AT TIME ZONE 'UTC')::text", lambda t: ts_text(t, True)),
    "interval": (INTERVAL_US, Raw),
    "json": ("{v}::text", parse_json_text),
    "bytea": ("{v}", lambda b: base64.b64encode(bytes(b)).decode("ascii")),
    "point": ("{v}::text", _point),
    # the type's output function (what pgoutput sends): keeps char(n) padding, inet without /32
    "text": ("case when {v} is null then null else format('%s', {v}) end", str),
}

TYPNAME_KIND = {
    "int2": "int", "int4": "int", "int8": "int", "oid": "int",
    "float4": "float", "float8": "float",
    "numeric": "numeric", "money": "money", "bool": "bool",
    "date": "date", "time": "time", "timetz": "timetz",
    "timestamp": "timestamp", "timestamptz": "timestamptz", "interval": "interval",
    "json": "json", "jsonb": "json", "bytea": "bytea", "point": "point",
}


def type_info(cur, oid):
    """(kind, element kind or None) for a type oid, looking through domains."""
    while True:
        cur.execute(
            "select typname, typtype, typcategory, typelem, typbasetype from pg_type where oid = %s",
            (oid,),
        )
        typname, typtype, typcat, typelem, typbase = cur.fetchone()
        if typtype == "d":
            oid = typbase
            continue
        if typcat == "A" and typelem:
            return "array", type_info(cur, typelem)[0]
        return TYPNAME_KIND.get(typname, "text"), None


def column_expr(kind, elem_kind, ident):
    if kind == "array":
        inner = KINDS[elem_kind][0].format(v="e")
        return (
            f"case when {ident} is null then null else "
            f"array(select {inner} from unnest({ident}) with ordinality as u(e, o) order by o) end"
        )
    return KINDS[kind][0].format(v=ident)


def render(kind, elem_kind, value):
    if value is None:
        return None
    if kind == "array":
        return [render(elem_kind, None, x) for x in value]
    return KINDS[kind][1](value)


def table_rows(conn, qualified):
    cur = conn.cursor()
    cur.execute("select %s::regclass::oid, %s::regclass::text", (qualified, qualified))
    reloid, _ = cur.fetchone()
    cur.execute(
        "select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = %s",
        (reloid,),
    )
    nsp, rel = cur.fetchone()
    cur.execute(
        "select attname, atttypid, attcollation <> 0 from pg_attribute"
        " where attrelid = %s and attnum > 0 and not attisdropped order by attnum",
        (reloid,),
    )
    cols = cur.fetchall()
    cur.execute(
        "select a.attname from pg_index i join lateral unnest(i.indkey) with ordinality k(attnum, n) on true"
        " join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum"
        " where i.indrelid = %s and i.indisprimary order by k.n",
        (reloid,),
    )
    pk = [r[0] for r in cur.fetchall()]

    kinds = []
    select = []
    for name, typoid, _ in cols:
        kind, elem = type_info(cur, typoid)
        kinds.append((name, kind, elem))
        ident = sql.Identifier(name).as_string(conn)
        select.append(column_expr(kind, elem, ident))
    collatable = {name: coll for name, _, coll in cols}
    order_cols = pk or [c[0] for c in cols]
    order = []
    for name in order_cols:
        # qualified, so that ORDER BY sees the column and not the same-named rendered text output
        ident = "t." + sql.Identifier(name).as_string(conn)
        if not pk:
            ident = f"{ident}::text"
        if collatable.get(name) or not pk:
            ident += ' collate "C"'
        order.append(ident)
    table_ident = sql.Identifier(nsp, rel).as_string(conn)
    query = f"select {', '.join(select)} from {table_ident} as t order by {', '.join(order)}"
    cur.execute(query)
    for rec in cur.fetchall():
        yield f"{nsp}.{rel}", {name: render(kind, elem, v) for (name, kind, elem), v in zip(kinds, rec)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default=os.environ.get("DECANT_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--out", help="output file (default stdout)")
    ap.add_argument("--schema", help="dump every ordinary table of this schema (when no table is named) "
                                     "and resolve unqualified table names in it")
    ap.add_argument("tables", nargs="*")
    args = ap.parse_args()

    with psycopg.connect(args.url, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute("set datestyle = 'ISO, YMD'; set timezone = 'UTC'; set intervalstyle = 'postgres';"
                        " set extra_float_digits = 1; set bytea_output = 'hex'")
            tables = list(args.tables)
            if not tables:
                if not args.schema:
                    ap.error("name tables or --schema")
                cur.execute(
                    "select quote_ident(n.nspname) || '.' || quote_ident(c.relname) from pg_class c"
                    " join pg_namespace n on n.oid = c.relnamespace"
                    " where n.nspname = %s and c.relkind in ('r', 'p') order by c.relname collate \"C\"",
                    (args.schema,),
                )
                tables = [r[0] for r in cur.fetchall()]
            elif args.schema:
                tables = [t if "." in t else sql.Identifier(args.schema, t).as_string(conn) for t in tables]
        out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
        try:
            for t in tables:
                for name, row in table_rows(conn, t):
                    out.write('{"table":' + json.dumps(name, ensure_ascii=False) + ',"row":' + dumps(row) + "}\n")
        finally:
            if args.out:
                out.close()


if __name__ == "__main__":
    main()
