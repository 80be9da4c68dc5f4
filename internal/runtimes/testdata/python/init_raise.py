def helper():
    raise ValueError("bad configuration at import")


helper()


def handler(event, context):
    return "unreachable"
