#!/usr/bin/env python3
"""Print the current metadata file of every table of a SQL catalog on SQLite, as JSON lines.

    lake_tables.py <catalog.db> [--catalog NAME]

One line per table: {"namespace": "ns", "table": "t", "metadata": "file:///…/00003-….metadata.json"}.
The catalog database's pointer is the truth: a metadata file that lost a compare-and-swap can
have the same version number as the committed one, so listing the directory is not enough.
Run with the test-bed venv python ($DECANT_PY) or any Python 3.
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
    con = sqlite3.connect(f"file:{args.db}?mode=ro", uri=True)
    sql = "SELECT catalog_name, table_namespace, table_name, metadata_location FROM iceberg_tables"
    rows = con.execute(sql).fetchall()
    for catalog, ns, table, location in sorted(rows):
        if args.catalog is not None and catalog != args.catalog:
            continue
        print(json.dumps({"namespace": ns, "table": table, "metadata": location}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
