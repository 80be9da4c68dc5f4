'use strict';
// CommonJS, with a module-level side effect that must happen once.
console.log('module cjs loaded');
let calls = 0;

exports.handler = async (event, context) => {
  calls++;
  console.log('cjs handler', calls);
  return { event, calls, pid: process.pid, kind: typeof require };
};

exports.nested = { deeper: { fn: async () => 'nested ok' } };
exports.notAFunction = 42;

exports.context = async (event, context) => {
  const first = context.getRemainingTimeInMillis();
  await new Promise((r) => setTimeout(r, 200));
  const second = context.getRemainingTimeInMillis();
  return {
    awsRequestId: context.awsRequestId,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
    identity: context.identity,
    clientContext: context.clientContext,
    remaining: [first, second],
    traceId: process.env._X_AMZN_TRACE_ID,
    executionEnv: process.env.AWS_EXECUTION_ENV,
    argv: process.argv.slice(2),
  };
};

exports.throws = async () => {
  throw new TypeError('bad thing');
};

exports.throwsString = () => {
  throw 'plain string';
};

exports.sync = (event) => {
  // Neither a callback nor a promise: Lambda answers null.
  return { ignored: true };
};

exports.unserializable = async () => {
  const a = {};
  a.self = a;
  return a;
};

exports.undefinedResult = async () => undefined;

exports.unhandledRejection = async () => {
  Promise.reject(new Error('rejected later'));
  await new Promise((r) => setTimeout(r, 500));
  return 'too late';
};

exports.neverSettles = async () => new Promise(() => {});
