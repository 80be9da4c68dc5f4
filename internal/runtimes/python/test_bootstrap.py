"""Unit tests of bootstrap.py (run by clients_test.go, or by hand:
python3 -m unittest discover -s internal/runtimes/python -p 'test_*.py')."""

import decimal
import io
import json
import os
import sys
import time
import unittest
from unittest import mock

import bootstrap


class FakeAPI:
    def __init__(self):
        self.responses = []
        self.errors = []

    def post_response(self, request_id, body, content_type):
        self.responses.append((request_id, body, content_type))

    def post_error(self, request_id, error):
        self.errors.append((request_id, error))


def headers(**extra):
    h = {
        "Lambda-Runtime-Aws-Request-Id": "req-1",
        "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 3000),
        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "Content-Type": "application/json",
    }
    h.update(extra)
    return h


class HandleInvocationTest(unittest.TestCase):
    def setUp(self):
        self.stdout = mock.patch.object(sys, "stdout", io.StringIO())
        self.stdout.start()

    def tearDown(self):
        self.stdout.stop()

    def test_result(self):
        api = FakeAPI()
        bootstrap.handle_invocation(api, lambda e, c: {"got": e, "id": c.aws_request_id}, headers(), b'{"a": 1}')
        self.assertEqual(api.errors, [])
        rid, body, ctype = api.responses[0]
        self.assertEqual((rid, ctype), ("req-1", "application/json"))
        self.assertEqual(json.loads(body), {"got": {"a": 1}, "id": "req-1"})

    def test_exception(self):
        def handler(event, context):
            raise KeyError("missing")

        api = FakeAPI()
        bootstrap.handle_invocation(api, handler, headers(), b"{}")
        rid, err = api.errors[0]
        self.assertEqual(rid, "req-1")
        self.assertEqual(err["errorType"], "KeyError")
        self.assertEqual(err["errorMessage"], "'missing'")
        self.assertEqual(err["requestId"], "req-1")
        self.assertEqual(len(err["stackTrace"]), 1)
        self.assertIn("in handler", err["stackTrace"][0])
        self.assertIn("[ERROR] KeyError: 'missing'", sys.stdout.getvalue())

    def test_marshal_error(self):
        api = FakeAPI()
        bootstrap.handle_invocation(api, lambda e, c: object(), headers(), b"{}")
        err = api.errors[0][1]
        self.assertEqual(err["errorType"], "Runtime.MarshalError")
        self.assertTrue(err["errorMessage"].startswith("Unable to marshal response: "))

    def test_unmarshal_error(self):
        api = FakeAPI()
        bootstrap.handle_invocation(api, lambda e, c: e, headers(), b"{not json")
        self.assertEqual(api.errors[0][1]["errorType"], "Runtime.UnmarshalError")

    def test_bad_client_context(self):
        api = FakeAPI()
        h = headers(**{"Lambda-Runtime-Client-Context": "{nope"})
        bootstrap.handle_invocation(api, lambda e, c: e, h, b"{}")
        self.assertEqual(api.errors[0][1]["errorType"], "Runtime.LambdaContextUnmarshalError")

    def test_trace_id(self):
        api = FakeAPI()
        h = headers(**{"Lambda-Runtime-Trace-Id": "Root=1-abc"})
        bootstrap.handle_invocation(api, lambda e, c: os.environ.get("_X_AMZN_TRACE_ID"), h, b"{}")
        bootstrap.handle_invocation(api, lambda e, c: os.environ.get("_X_AMZN_TRACE_ID"), headers(), b"{}")
        self.assertEqual([r[1] for r in api.responses], [b'"Root=1-abc"', b"null"])


class MarshalTest(unittest.TestCase):
    def test_decimal(self):
        body, _ = bootstrap.marshal_response({"i": decimal.Decimal("3"), "f": decimal.Decimal("1.5")})
        self.assertEqual(json.loads(body), {"i": 3, "f": 1.5})

    def test_bytes(self):
        self.assertEqual(bootstrap.marshal_response(b"\x00raw"), (b"\x00raw", "application/unknown"))


class ContextTest(unittest.TestCase):
    def test_remaining_time(self):
        now = int(time.time() * 1000)
        ctx = bootstrap.LambdaContext("id", now + 1000)
        self.assertTrue(900 <= ctx.get_remaining_time_in_millis() <= 1000)
        self.assertEqual(bootstrap.LambdaContext("id", now - 5).get_remaining_time_in_millis(), 0)

    def test_environment(self):
        env = {
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_LAMBDA_FUNCTION_VERSION": "7",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "stream",
        }
        with mock.patch.dict(os.environ, env):
            ctx = bootstrap.LambdaContext("id", 0, "arn", {"client": {"app_title": "t"}, "custom": {"a": 1}}, None)
        self.assertEqual(
            (ctx.function_name, ctx.memory_limit_in_mb, ctx.function_version, ctx.log_group_name, ctx.log_stream_name),
            ("fn", "512", "7", "/aws/lambda/fn", "stream"),
        )
        self.assertEqual(ctx.client_context.client.app_title, "t")
        self.assertIsNone(ctx.client_context.client.installation_id)
        self.assertEqual(ctx.client_context.custom, {"a": 1})
        self.assertIsNone(ctx.identity.cognito_identity_id)
        self.assertIn("aws_request_id=id", repr(ctx))


class LoadHandlerTest(unittest.TestCase):
    def test_errors(self):
        cases = [
            ("nodot", "Runtime.MalformedHandlerName"),
            (".handler", "Runtime.MalformedHandlerName"),
            ("sys.path", "Runtime.BuiltInModuleConflict"),
            ("ember_missing_module_xyz.handler", "Runtime.ImportModuleError"),
            ("json.no_such_function", "Runtime.HandlerNotFound"),
        ]
        for handler, typ in cases:
            with self.subTest(handler=handler):
                with self.assertRaises(bootstrap.FaultException) as cm:
                    bootstrap.load_handler(handler)
                self.assertEqual(cm.exception.exception_type, typ)

    def test_found(self):
        self.assertIs(bootstrap.load_handler("json.dumps"), json.dumps)
        self.assertIs(bootstrap.load_handler("os/path.join"), os.path.join)


class SysPathTest(unittest.TestCase):
    def test_order(self):
        saved = list(sys.path)
        try:
            sys.path[:] = ["/var/runtime", "", "/usr/lib/python3.x", "/var/runtime"]
            bootstrap.set_sys_path("/var/task", "/var/runtime")
            v = "python%d.%d" % sys.version_info[:2]
            self.assertEqual(
                sys.path,
                ["/var/task", "/opt/python/lib/%s/site-packages" % v, "/opt/python", "/var/runtime", "/usr/lib/python3.x"],
            )
        finally:
            sys.path[:] = saved


class ErrorFormatTest(unittest.TestCase):
    def test_make_error(self):
        self.assertEqual(
            bootstrap.make_error(None, "T", None),
            {"errorMessage": "", "errorType": "T", "requestId": "", "stackTrace": []},
        )

    def test_log_error(self):
        out = io.StringIO()
        with mock.patch.object(sys, "stdout", out):
            bootstrap.log_error(bootstrap.make_error("msg", "T", ['  File "x.py", line 1, in f\n    boom()\n']))
        self.assertEqual(
            out.getvalue(),
            '[ERROR] T: msg\nTraceback (most recent call last):\n  File "x.py", line 1, in f\n    boom()\n',
        )


if __name__ == "__main__":
    unittest.main()
