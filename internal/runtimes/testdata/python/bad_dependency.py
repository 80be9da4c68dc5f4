import ember_no_such_package_xyz  # noqa: F401


def handler(event, context):
    return 1
