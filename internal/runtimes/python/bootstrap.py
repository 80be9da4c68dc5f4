"""Ember's runtime client for Python functions.

Ember runs it inside the sandbox as

    pythonX.Y -u /var/runtime/bootstrap.py HANDLER

It imports the function's module once, then loops on the Lambda Runtime API
(at AWS_LAMBDA_RUNTIME_API): GET .../invocation/next, call
``module.function(event, context)``, POST the result (or the error) back.
Only the standard library is used, so that it runs on any CPython >= 3.8.

What it reports follows AWS's own Python runtime (awslambdaric):

* an exception raised by the handler is ``{"errorMessage", "errorType",
  "requestId", "stackTrace"}`` with the exception's class name as the type
  and the traceback without this file's frames;
* a result that JSON cannot encode is ``Runtime.MarshalError``;
* a module that cannot be imported, a missing handler, a syntax error or an
  exception at import time is posted to /runtime/init/error and the process
  exits: Runtime.ImportModuleError, Runtime.HandlerNotFound,
  Runtime.UserCodeSyntaxError, Runtime.MalformedHandlerName,
  Runtime.BuiltInModuleConflict, or the exception's own class name.

Only ``Exception`` is caught: ``sys.exit()`` in a handler ends the process,
which the platform reports as Runtime.ExitError, as Lambda does.
"""

import decimal
import http.client
import importlib
import json
import logging
import os
import sys
import time
import traceback

API_PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"

# Error types of the runtime itself (awslambdaric's FaultException).
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

_current_request_id = None


class FaultException(Exception):
    """A failure the runtime diagnoses itself, with Lambda's error type."""

    def __init__(self, exception_type, msg, trace=None):
        super().__init__(msg)
        self.exception_type = exception_type
        self.msg = msg
        self.trace = trace


class RuntimeAPIError(Exception):
    """The Runtime API refused a request; the runtime should stop."""


# ---------------------------------------------------------------------------
# Runtime API client


class RuntimeAPI:
    """A keep-alive HTTP/1.1 client of the Runtime API."""

    def __init__(self, address):
        self.address = address
        self.conn = None

    def _request(self, method, path, body=None, headers=None):
        last = None
        for _ in range(2):  # a second try on a fresh connection
            if self.conn is None:
                # No timeout: GET /next long-polls.
                self.conn = http.client.HTTPConnection(self.address)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.conn.close()
                    self.conn = None
                return resp.status, resp.headers, data
            except (OSError, http.client.HTTPException) as e:
                last = e
                self.conn.close()
                self.conn = None
        raise RuntimeAPIError(
            "Runtime API %s %s failed: %s" % (method, path, last)
        ) from last

    def next(self):
        status, headers, body = self._request("GET", API_PREFIX + "/invocation/next")
        if status != 200:
            raise RuntimeAPIError(
                "Runtime API /invocation/next answered %d: %s"
                % (status, body.decode("utf-8", "replace"))
            )
        return headers, body

    def _post(self, path, body, content_type, error_type=None):
        headers = {"Content-Type": content_type}
        if error_type:
            headers[ERROR_TYPE_HEADER] = error_type
        status, _, resp = self._request("POST", path, body, headers)
        if status == 202:
            return
        text = resp.decode("utf-8", "replace")
        if status >= 500:
            # "Container error": the runtime should exit.
            raise RuntimeAPIError("Runtime API %s answered %d: %s" % (path, status, text))
        # 400/403/413: this answer was refused (stale, too large); the
        # platform has recorded the outcome. Carry on with the next event.
        sys.stderr.write("Runtime API %s answered %d: %s\n" % (path, status, text))

    def post_response(self, request_id, body, content_type):
        self._post("%s/invocation/%s/response" % (API_PREFIX, request_id), body, content_type)

    def post_error(self, request_id, error):
        self._post(
            "%s/invocation/%s/error" % (API_PREFIX, request_id),
            to_json(error).encode("utf-8"),
            "application/json",
            error.get("errorType"),
        )

    def post_init_error(self, error):
        self._post(
            API_PREFIX + "/init/error",
            to_json(error).encode("utf-8"),
            "application/json",
            error.get("errorType"),
        )


# ---------------------------------------------------------------------------
# JSON


class _Encoder(json.JSONEncoder):
    """JSON as Lambda's Python runtime writes it: Decimal as a number."""

    def default(self, o):
        if isinstance(o, decimal.Decimal):
            if o.is_nan():
                return float("nan")
            if o == o.to_integral_value() and o.as_tuple().exponent >= 0:
                return int(o)
            return float(o)
        return super().default(o)


# Lambda's Python 3.12 and later return non-ASCII characters as they are;
# earlier versions escape them.
_ENSURE_ASCII = sys.version_info < (3, 12)


def to_json(obj):
    return json.dumps(obj, cls=_Encoder, ensure_ascii=_ENSURE_ASCII)


def marshal_response(response):
    """The body and content type of a handler's result."""
    if isinstance(response, (bytes, bytearray)):
        return bytes(response), "application/unknown"
    try:
        return to_json(response).encode("utf-8"), "application/json"
    except Exception as e:
        raise FaultException(MARSHAL_ERROR, "Unable to marshal response: %s" % e)


def unmarshal_request(body, content_type):
    if content_type and not content_type.startswith("application/json"):
        return body
    try:
        return json.loads(body)
    except Exception as e:
        raise FaultException(UNMARSHAL_ERROR, "Unable to unmarshal input: %s" % e)


# ---------------------------------------------------------------------------
# Context


class CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]

    def __repr__(self):
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client:
    __slots__ = [
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    ]

    def __repr__(self):
        return "Client(%s)" % ",".join("%s=%s" % (f, getattr(self, f)) for f in self.__slots__)


class ClientContext:
    __slots__ = ["custom", "env", "client"]

    def __repr__(self):
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


def _obj_from_dict(cls, d):
    if d is None:
        return None
    obj = cls()
    for field in cls.__slots__:
        setattr(obj, field, d.get(field) if isinstance(d, dict) else None)
    return obj


class LambdaContext:
    """The context object: the attributes and methods of Lambda's."""

    def __init__(
        self,
        aws_request_id,
        deadline_ms,
        invoked_function_arn=None,
        client_context=None,
        cognito_identity=None,
        tenant_id=None,
    ):
        env = os.environ
        self.aws_request_id = aws_request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        # A string, as in Lambda's Python runtime.
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self.client_context = _obj_from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _obj_from_dict(Client, self.client_context.client)
        self.identity = _obj_from_dict(CognitoIdentity, {})
        if isinstance(cognito_identity, dict):
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,"
            "function_name=%s,memory_limit_in_mb=%s,function_version=%s,"
            "invoked_function_arn=%s,client_context=%s,identity=%s,tenant_id=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
                self.tenant_id,
            )
        )


def _parse_json_header(value, name):
    if not value:
        return None
    try:
        return json.loads(value)
    except Exception as e:
        raise FaultException(CONTEXT_UNMARSHAL_ERROR, "Unable to parse %s JSON: %s" % (name, e))


# ---------------------------------------------------------------------------
# Errors


def make_error(message, error_type, stack_trace, request_id=None):
    return {
        "errorMessage": message if message else "",
        "errorType": error_type if error_type else "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": stack_trace if stack_trace else [],
    }


def _user_frames(tb):
    """The traceback's frames from the first one outside this file and
    importlib's machinery."""
    frames = traceback.extract_tb(tb)
    skip = (os.path.abspath(__file__), os.path.abspath(importlib.__file__))
    for i, frame in enumerate(frames):
        if frame.filename.startswith("<frozen importlib"):
            continue
        if os.path.abspath(frame.filename) not in skip:
            return frames[i:]
    return frames[len(frames):]


def fault_result(exc_info, request_id=None):
    etype, value, tb = exc_info
    if isinstance(value, FaultException):
        return make_error(value.msg, value.exception_type, value.trace, request_id)
    return make_error(
        str(value),
        etype.__name__,
        traceback.format_list(_user_frames(tb)),
        request_id,
    )


def log_error(error):
    """Writes an error to the function's log as Lambda's runtime does."""
    line = "[ERROR]"
    if error.get("errorType"):
        line += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            line += ":"
        line += " " + error["errorMessage"]
    lines = [line, "Traceback (most recent call last):"]
    for element in error.get("stackTrace") or []:
        lines.extend(element.splitlines() or [""])
    sys.stdout.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------
# Logging


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _current_request_id or ""
        return True


class _StdoutHandler(logging.Handler):
    def emit(self, record):
        try:
            sys.stdout.write(self.format(record))
        except Exception:
            self.handleError(record)


def setup_logging():
    """The root logger writes Lambda's text format to the function's log."""
    logging.Formatter.converter = time.gmtime
    handler = _StdoutHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level == "FATAL":
        level = "CRITICAL"
    if level in ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"):
        root.setLevel("WARNING" if level == "WARN" else level)
    root.addHandler(handler)


# ---------------------------------------------------------------------------
# The handler


def set_sys_path(task_root, runtime_dir):
    """sys.path as on Lambda: the function's code, then its layers, then the
    runtime, then the interpreter's own directories."""
    version = "python%d.%d" % sys.version_info[:2]
    first = [
        task_root,
        "/opt/python/lib/%s/site-packages" % version,
        "/opt/python",
        runtime_dir,
    ]
    script_dir = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if p not in first and p != script_dir and p != ""]
    sys.path[:] = first + rest


def load_handler(handler):
    """Imports the handler's module and returns the function, or raises
    FaultException with Lambda's error type. The module's top-level code
    runs here, once per sandbox."""
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(MALFORMED_HANDLER_NAME, "Bad handler '%s': %s" % (handler, e))
    if not modname or not fname:
        raise FaultException(
            MALFORMED_HANDLER_NAME, "Bad handler '%s': empty module or function name" % handler
        )
    if modname.split(".")[0] in sys.builtin_module_names:
        raise FaultException(
            BUILT_IN_MODULE_CONFLICT,
            "Cannot use built-in module %s as a handler module" % modname,
        )
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise FaultException(
            IMPORT_MODULE_ERROR, "Unable to import module '%s': %s" % (modname, e)
        )
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise FaultException(
            USER_CODE_SYNTAX_ERROR,
            "Syntax error in module '%s': %s" % (modname, e),
            trace,
        )
    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultException(
            HANDLER_NOT_FOUND, "Handler '%s' missing on module '%s'" % (fname, modname)
        )


def _set_trace_id(trace_id):
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)


def handle_invocation(api, handler, headers, body):
    """Runs one invocation and posts its outcome."""
    global _current_request_id
    request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
    _current_request_id = request_id
    _set_trace_id(headers.get("Lambda-Runtime-Trace-Id"))
    error = None
    try:
        try:
            deadline = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))
        except ValueError:
            deadline = 0
        context = LambdaContext(
            request_id,
            deadline,
            headers.get("Lambda-Runtime-Invoked-Function-Arn"),
            _parse_json_header(headers.get("Lambda-Runtime-Client-Context"), "Client Context"),
            _parse_json_header(headers.get("Lambda-Runtime-Cognito-Identity"), "Cognito Identity"),
            headers.get("Lambda-Runtime-Aws-Tenant-Id"),
        )
        event = unmarshal_request(body, headers.get("Content-Type"))
        result, content_type = marshal_response(handler(event, context))
    except Exception:
        error = fault_result(sys.exc_info(), request_id)
    if error is not None:
        log_error(error)
        api.post_error(request_id, error)
    else:
        api.post_response(request_id, result, content_type)


def main(argv):
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        sys.stderr.write("bootstrap.py: AWS_LAMBDA_RUNTIME_API is not set\n")
        return 2
    handler_name = argv[1] if len(argv) > 1 else os.environ.get("_HANDLER", "")
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    runtime_dir = os.environ.get("LAMBDA_RUNTIME_DIR", os.path.dirname(os.path.abspath(__file__)))
    set_sys_path(task_root, runtime_dir)
    api = RuntimeAPI(address)
    setup_logging()

    try:
        handler = load_handler(handler_name)
    except Exception:
        error = fault_result(sys.exc_info())
        log_error(error)
        try:
            api.post_init_error(error)
        except RuntimeAPIError as e:
            sys.stderr.write("%s\n" % e)
        return 1

    while True:
        try:
            headers, body = api.next()
        except RuntimeAPIError as e:
            sys.stderr.write("%s\n" % e)
            return 1
        try:
            handle_invocation(api, handler, headers, body)
        except RuntimeAPIError as e:
            sys.stderr.write("%s\n" % e)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
