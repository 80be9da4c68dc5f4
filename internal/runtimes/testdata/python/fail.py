class BoomError(Exception):
    pass


def explode(what):
    raise BoomError("boom: " + what)


def handler(event, context):
    explode(event.get("what", "nothing"))


def unserializable(event, context):
    return {"a set": {1, 2}}


def raw_bytes(event, context):
    return b"not json at all"


def unicode(event, context):
    return {"text": "h\u00e9llo \u2603"}
