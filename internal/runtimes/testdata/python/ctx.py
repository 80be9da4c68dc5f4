import os
import sys
import time


def handler(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.2)
    second = context.get_remaining_time_in_millis()
    cc = context.client_context
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "identity": {
            "cognito_identity_id": context.identity.cognito_identity_id,
            "cognito_identity_pool_id": context.identity.cognito_identity_pool_id,
        },
        "client_context": None
        if cc is None
        else {
            "installation_id": cc.client.installation_id if cc.client else None,
            "custom": cc.custom,
            "env": cc.env,
        },
        "remaining": [first, second],
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "execution_env": os.environ.get("AWS_EXECUTION_ENV"),
        "sys_path_head": sys.path[:1],
        "argv": sys.argv[1:],
    }
