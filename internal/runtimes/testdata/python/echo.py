import logging
import os

print("module echo imported")  # module-level code: runs once per sandbox
CALLS = 0


def handler(event, context):
    global CALLS
    CALLS += 1
    logging.warning("echo warning %d", CALLS)
    print("echo print", CALLS)
    return {"event": event, "calls": CALLS, "pid": os.getpid()}


NOT_CALLABLE = 42
