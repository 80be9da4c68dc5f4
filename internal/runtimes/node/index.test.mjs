// Unit tests of index.mjs with Node's built-in test runner (run by
// clients_test.go, or by hand: node --test internal/runtimes/node/index.test.mjs).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  ImportModuleError,
  callbackContext,
  formatLogLine,
  invokeData,
  loadHandler,
  serialize,
  splitHandler,
  toFormatted,
  toRapidResponse,
} from './index.mjs';

test('splitHandler', () => {
  assert.deepEqual(splitHandler('index.handler'), ['', 'index', 'handler']);
  assert.deepEqual(splitHandler('src/app/main.a.b'), ['src/app/', 'main', 'a.b']);
  assert.deepEqual(splitHandler('x.y/x.y'), ['x.y/', 'x', 'y']);
  for (const bad of ['index', '.handler', 'index.', '']) {
    assert.throws(() => splitHandler(bad), { name: 'Runtime.MalformedHandlerName' }, bad);
  }
  assert.throws(() => splitHandler('../up.handler'), { name: 'Runtime.MalformedHandlerName' });
});

test('toRapidResponse', () => {
  const e = new TypeError('nope');
  const doc = toRapidResponse(e);
  assert.equal(doc.errorType, 'TypeError');
  assert.equal(doc.errorMessage, 'nope');
  assert.equal(doc.trace[0], 'TypeError: nope');
  assert.deepEqual(toRapidResponse('str'), { errorType: 'string', errorMessage: 'str', trace: [] });
  assert.deepEqual(toRapidResponse(42), { errorType: 'number', errorMessage: '42', trace: [] });
  const custom = new Error('x');
  custom.name = 'MyError';
  assert.equal(toRapidResponse(custom).errorType, 'MyError');
  const wrapped = new ImportModuleError(new Error('Cannot find module'));
  assert.equal(toRapidResponse(wrapped).errorType, 'Runtime.ImportModuleError');
  assert.equal(toRapidResponse(wrapped).errorMessage, 'Error: Cannot find module');
});

test('toFormatted', () => {
  const e = new Error('boom');
  e.code = 'E_BOOM';
  const doc = JSON.parse(toFormatted(e).slice(1));
  assert.equal(doc.errorType, 'Error');
  assert.equal(doc.errorMessage, 'boom');
  assert.equal(doc.code, 'E_BOOM');
  assert.equal(doc.stack[0], 'Error: boom');
  assert.ok(toFormatted(e).startsWith('\t'));
});

test('formatLogLine', () => {
  const line = formatLogLine('req-1', 'INFO', 'a %s', ['b']);
  assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\treq-1\tINFO\ta b\n$/);
  assert.match(formatLogLine(undefined, 'WARN', { x: 1 }, []), /\tundefined\tWARN\t\{ x: 1 \}\n$/);
});

test('serialize', () => {
  assert.equal(serialize(undefined), 'null');
  assert.equal(serialize(() => 1), 'null');
  assert.equal(serialize({ a: [1] }), '{"a":[1]}');
  const c = {};
  c.c = c;
  assert.throws(() => serialize(c));
});

test('invokeData', () => {
  const headers = {
    'lambda-runtime-aws-request-id': 'id-1',
    'lambda-runtime-deadline-ms': String(Date.now() + 1000),
    'lambda-runtime-invoked-function-arn': 'arn',
    'lambda-runtime-client-context': '{"custom":{"a":1}}',
  };
  const env = {
    AWS_LAMBDA_FUNCTION_NAME: 'fn',
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '128',
    AWS_LAMBDA_LOG_GROUP_NAME: '/aws/lambda/fn',
    AWS_LAMBDA_LOG_STREAM_NAME: 's',
  };
  const d = invokeData(headers, env);
  assert.equal(d.awsRequestId, 'id-1');
  assert.equal(d.invokedFunctionArn, 'arn');
  assert.deepEqual(d.clientContext, { custom: { a: 1 } });
  assert.equal(d.identity, undefined);
  assert.equal(d.functionName, 'fn');
  assert.equal(d.memoryLimitInMB, '128');
  const left = d.getRemainingTimeInMillis();
  assert.ok(left > 900 && left <= 1000, String(left));
  assert.throws(() => invokeData({ 'lambda-runtime-client-context': '{' }, env), /ClientContext/);
});

test('callbackContext: first outcome wins', () => {
  const posted = [];
  const [callback, ctx] = callbackContext((err, result) => posted.push([err, result]));
  ctx.callbackWaitsForEmptyEventLoop = false;
  callback(null, 1);
  callback(null, 2);
  ctx.succeed(3);
  ctx.fail(new Error('late'));
  assert.deepEqual(posted, [[null, 1]]);
});

test('callbackContext: errors and fail()', () => {
  const posted = [];
  const [, ctx] = callbackContext((err, result) => posted.push([err, result]));
  ctx.fail();
  assert.deepEqual(posted, [['handled', undefined]]);
  const more = [];
  const [cb] = callbackContext((err) => more.push(err));
  const e = new Error('x');
  cb(e);
  assert.deepEqual(more, [e]);
});

test('callbackContext: markFinished stops later outcomes', () => {
  const posted = [];
  const [callback, , markFinished] = callbackContext((err, result) => posted.push(result));
  markFinished();
  callback(null, 1);
  assert.deepEqual(posted, []);
});

test('loadHandler', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ember-node-test-'));
  try {
    fs.writeFileSync(path.join(dir, 'a.js'), 'exports.h = async () => "cjs"; exports.n = 1;');
    fs.writeFileSync(path.join(dir, 'b.mjs'), 'export const h = async () => "esm";');
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'package.json'), '{"type":"module"}');
    fs.writeFileSync(path.join(dir, 'sub', 'c.js'), 'export const h = async () => "type module";');
    fs.writeFileSync(path.join(dir, 'bad.js'), 'exports.h = (;');
    assert.equal(await (await loadHandler(dir, 'a.h'))(), 'cjs');
    assert.equal(await (await loadHandler(dir, 'b.h'))(), 'esm');
    assert.equal(await (await loadHandler(dir, 'sub/c.h'))(), 'type module');
    await assert.rejects(loadHandler(dir, 'a.missing'), { name: 'Runtime.HandlerNotFound' });
    await assert.rejects(loadHandler(dir, 'a.n'), {
      name: 'Runtime.HandlerNotFound',
      message: 'a.n is not a function',
    });
    await assert.rejects(loadHandler(dir, 'nothere.h'), { name: 'Runtime.ImportModuleError' });
    await assert.rejects(loadHandler(dir, 'bad.h'), { name: 'Runtime.UserCodeSyntaxError' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
