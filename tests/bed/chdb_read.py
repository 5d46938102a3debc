#!/usr/bin/env python3
"""Print the rows of a local Iceberg table, as of one metadata file, as JSON lines (via chdb).

    chdb_read.py <path/to/table/metadata/NNNNN-….metadata.json> [--no-sort] [--describe]

Uses chdb 4.4.0 (embedded ClickHouse 26.9): the icebergLocal table function on the table root
(the parent of the metadata/ directory) with the storage setting iceberg_metadata_file_path set
to the given file, so exactly that snapshot is read (not the newest one):

    SELECT * FROM icebergLocal('<root>', SETTINGS iceberg_metadata_file_path = '<file>')
    ORDER BY ALL FORMAT JSONEachRow

Output: one JSON object per row, columns in table order, rows sorted by all columns (--no-sort:
file order). 64-bit integers are JSON numbers, decimals are strings with their full scale
("1.50"), NaN/inf floats are strings, timestamps are ClickHouse text ("2024-01-01 12:00:00.123456").
--describe prints the ClickHouse column types instead (name<TAB>type). --base64 a,b prints those
(binary) columns base64-encoded.
Exit status 1 with a one-line message on stderr when the path or the table cannot be read.
Run with the test-bed venv python ($DECANT_PY).
"""

import argparse
import os
import sys

OUTPUT_SETTINGS = (
    "output_format_json_quote_64bit_integers = 0, "
    "output_format_json_quote_decimals = 1, "
    "output_format_decimal_trailing_zeros = 1, "
    "output_format_json_quote_denormals = 1, "
    "output_format_json_escape_forward_slashes = 0, "
    "output_format_json_named_tuples_as_objects = 1"
)


def sql_str(s):
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metadata", help="path (or file:// URL) of a *.metadata.json inside <table>/metadata/")
    ap.add_argument("--no-sort", action="store_true", help="do not ORDER BY ALL")
    ap.add_argument("--describe", action="store_true", help="print column names and ClickHouse types")
    ap.add_argument("--base64", default="", help="comma-separated binary columns to print base64-encoded")
    args = ap.parse_args()

    path = args.metadata
    if path.startswith("file://"):
        path = path[len("file://"):]
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        print(f"chdb_read: no such metadata file: {path}", file=sys.stderr)
        return 1
    meta_dir = os.path.dirname(path)
    if os.path.basename(meta_dir) != "metadata":
        print(f"chdb_read: {path} is not inside a <table>/metadata/ directory", file=sys.stderr)
        return 1
    root = os.path.dirname(meta_dir)

    import chdb  # late: a bad path should not pay for loading the engine

    # chdb only reads files below its user_files_path, which is the working directory.
    os.chdir(root)

    source = f"icebergLocal({sql_str(root)}, SETTINGS iceberg_metadata_file_path = {sql_str(path)})"
    if args.describe:
        query = f"DESCRIBE {source} FORMAT TSV"
    else:
        order = "" if args.no_sort else " ORDER BY ALL"
        cols = [c for c in args.base64.split(",") if c]
        replace = ""
        if cols:
            quoted = ", ".join(f"base64Encode(`{c}`) AS `{c}`" for c in cols)
            replace = f" REPLACE ({quoted})"
        query = f"SELECT *{replace} FROM {source}{order} FORMAT JSONEachRow SETTINGS {OUTPUT_SETTINGS}"
    try:
        result = chdb.query(query)
    except Exception as e:  # chdb raises RuntimeError with the ClickHouse message
        msg = " ".join(str(e).split())
        print(f"chdb_read: {msg}", file=sys.stderr)
        return 1
    out = result.bytes() if hasattr(result, "bytes") else str(result).encode()
    if args.describe:
        out = b"\n".join(b"\t".join(line.split(b"\t")[:2]) for line in out.splitlines()) + (b"\n" if out else b"")
    sys.stdout.buffer.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
