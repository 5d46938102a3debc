"""Canonical JSON for the bed's state dumpers (pg_state.py, mysql_state.py): values rendered
exactly, numbers kept as the database printed them (Raw), object members in order."""

import json


class Raw:
    """A pre-rendered JSON token (keeps numbers exactly as the database printed them)."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


def dumps(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(dumps(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + dumps(x) for k, x in v.items()) + "}"
    raise TypeError(f"cannot render {type(v)}")
