#!/usr/bin/env python3
"""Print the current metadata file of every table of a SQL catalog, as JSON lines.

    lake_tables.py <catalog.db | postgres://…> [--catalog NAME]

One line per table: {"namespace": "ns", "table": "t", "metadata": "file:///…/00003-….metadata.json"}.
The catalog database's pointer is the truth: a metadata file that lost a compare-and-swap can
have the same version number as the committed one, so listing the directory is not enough.
Run with the test-bed venv python ($DECANT_PY; a PostgreSQL catalog needs its psycopg).
"""

import argparse
import json
import sqlite3
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("db")
    ap.add_argument("--catalog", default=None)
    args = ap.parse_args()
    sql = "SELECT catalog_name, table_namespace, table_name, metadata_location FROM iceberg_tables"
    if args.db.startswith("postgres"):
        import psycopg

        with psycopg.connect(args.db) as con:
            rows = con.execute(sql).fetchall()
    else:
        con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
        rows = con.execute(sql).fetchall()
    for catalog, ns, table, location in sorted(rows):
        if args.catalog is not None and catalog != args.catalog:
            continue
        print(json.dumps({"namespace": ns, "table": table, "metadata": location}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
