// Ember's runtime client for Node.js functions.
//
// Ember runs it inside the sandbox as
//
//   node [heap options] /var/runtime/index.mjs HANDLER
//
// It loads the function's module once (CommonJS through require, ES modules
// through import()), then loops on the Lambda Runtime API (at
// AWS_LAMBDA_RUNTIME_API): GET .../invocation/next, call
// handler(event, context, callback), POST the result or the error back. It
// has no dependencies beyond Node's own modules (Node 18 or later).
//
// Behaviour follows AWS's Node.js runtime (aws-lambda-nodejs-runtime-
// interface-client) where it is observable:
//   - handler "dir/file.export.nested": file is looked up in LAMBDA_TASK_ROOT
//     as file (no extension), file.js (CommonJS unless the nearest
//     package.json says "type": "module"), file.mjs, file.cjs, then by
//     Node's own resolution; ".." in a handler is refused;
//   - async handlers (a promise) and callback handlers (event, context,
//     callback); with a callback, the answer waits for the event loop to be
//     empty unless context.callbackWaitsForEmptyEventLoop is false; a
//     handler that neither calls back nor returns a promise answers null
//     when the event loop is empty;
//   - errors are {errorType, errorMessage, trace} (trace: the stack's
//     lines); a thrown non-Error is {errorType: typeof, errorMessage:
//     String(value), trace: []};
//   - init errors: Runtime.ImportModuleError, Runtime.HandlerNotFound,
//     Runtime.MalformedHandlerName, Runtime.UserCodeSyntaxError, or the
//     error the module threw; an uncaught exception or unhandled rejection
//     fails the current invocation (or init) and ends the process;
//   - console.* writes "ISO-TIME\tREQUEST-ID\tLEVEL\tmessage" lines, filtered
//     by AWS_LAMBDA_LOG_LEVEL.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import util from 'node:util';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

const API_PREFIX = '/2018-06-01/runtime';
const ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type';
const NODE_MAJOR = parseInt(process.versions.node.split('.')[0], 10);

// ---------------------------------------------------------------------------
// Errors

function runtimeErrorClass(name) {
  const cls = class extends Error {};
  Object.defineProperty(cls, 'name', { value: name });
  cls.prototype.name = `Runtime.${name}`;
  return cls;
}

export const HandlerNotFound = runtimeErrorClass('HandlerNotFound');
export const MalformedHandlerName = runtimeErrorClass('MalformedHandlerName');
export const CallbackHandlerDeprecated = runtimeErrorClass('CallbackHandlerDeprecated');

export class ImportModuleError extends Error {
  constructor(original) {
    super(String(original));
  }
}
ImportModuleError.prototype.name = 'Runtime.ImportModuleError';

export class UserCodeSyntaxError extends Error {
  constructor(original) {
    super(String(original));
    if (typeof original?.stack === 'string') this.stack = original.stack;
  }
}
UserCodeSyntaxError.prototype.name = 'Runtime.UserCodeSyntaxError';

export class UnhandledPromiseRejection extends Error {
  constructor(reason, promise) {
    super(String(reason));
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = 'Runtime.UnhandledPromiseRejection';

export class NodeJsExit extends Error {
  constructor() {
    super(
      'The handler returned a promise that never settled, and the event loop is empty: ' +
        'the function ended without an answer.',
    );
  }
}
NodeJsExit.prototype.name = 'Runtime.NodeJsExit';

class RuntimeAPIError extends Error {}

function isErrorLike(e) {
  return (
    e && typeof e.name === 'string' && typeof e.message === 'string' && typeof e.stack === 'string'
  );
}

// toRapidResponse is the error document posted to the Runtime API.
export function toRapidResponse(error) {
  try {
    if (util.types.isNativeError(error) || isErrorLike(error)) {
      return {
        errorType: String(error.name),
        errorMessage: String(error.message),
        trace: typeof error.stack === 'string' ? error.stack.split('\n') : [],
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch (_) {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

function withEnumerableProperties(_key, value) {
  if (value instanceof Error) {
    const ret = Object.assign(
      { errorType: value.name, errorMessage: value.message, code: value.code },
      value,
    );
    if (typeof value.stack === 'string') ret.stack = value.stack.split('\n');
    return ret;
  }
  return value;
}

// toFormatted is an error as the runtime logs it.
export function toFormatted(error) {
  try {
    return '\t' + JSON.stringify(error, withEnumerableProperties);
  } catch (_) {
    return '\t' + JSON.stringify(toRapidResponse(error));
  }
}

function intoError(e) {
  return e instanceof Error ? e : new Error(e);
}

// headerValue makes a string safe as an HTTP header value.
function headerValue(s) {
  return String(s).replace(/[^\x20-\x7e]/g, '').slice(0, 1024);
}

// ---------------------------------------------------------------------------
// Logging

let currentRequestId; // undefined during init, as in Lambda's logs

const LEVELS = { TRACE: 1, DEBUG: 2, INFO: 3, WARN: 4, ERROR: 5, FATAL: 6 };

export function formatLogLine(requestId, level, message, params) {
  return `${new Date().toISOString()}\t${requestId}\t${level}\t${util.format(message, ...params)}\n`;
}

function patchConsole() {
  const min = LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL || '').toUpperCase()] ?? LEVELS.TRACE;
  const writer = (level) =>
    LEVELS[level] >= min
      ? (message, ...params) => {
          process.stdout.write(formatLogLine(currentRequestId, level, message, params));
        }
      : () => {};
  console.trace = writer('TRACE');
  console.debug = writer('DEBUG');
  console.info = writer('INFO');
  console.log = console.info;
  console.warn = writer('WARN');
  console.error = writer('ERROR');
  console.fatal = writer('FATAL');
}

function logError(what, err) {
  console.error(what, toFormatted(intoError(err)));
}

// ---------------------------------------------------------------------------
// Runtime API client

class RuntimeAPI {
  constructor(address) {
    const i = address.lastIndexOf(':');
    this.host = address.slice(0, i).replace(/^\[|\]$/g, '');
    this.port = Number(address.slice(i + 1));
    // One keep-alive connection; an idle one does not keep the process
    // alive, so 'beforeExit' still tells when the function's work is done.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  requestOnce(method, urlPath, body, headers) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: this.host, port: this.port, method, path: urlPath, headers, agent: this.agent },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async request(method, urlPath, body, headers = {}) {
    try {
      return await this.requestOnce(method, urlPath, body, headers);
    } catch (_) {
      // A keep-alive connection may have been closed under us: try once
      // more on a fresh one.
      try {
        return await this.requestOnce(method, urlPath, body, headers);
      } catch (err) {
        throw new RuntimeAPIError(`Runtime API ${method} ${urlPath} failed: ${err.message}`);
      }
    }
  }

  async next() {
    const res = await this.request('GET', `${API_PREFIX}/invocation/next`);
    if (res.status !== 200) {
      throw new RuntimeAPIError(
        `Runtime API /invocation/next answered ${res.status}: ${res.body.toString()}`,
      );
    }
    return res;
  }

  async post(urlPath, body, headers) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = Buffer.byteLength(body);
    const res = await this.request('POST', urlPath, body, headers);
    if (res.status === 202) return;
    const msg = `Runtime API ${urlPath} answered ${res.status}: ${res.body.toString()}`;
    if (res.status >= 500) throw new RuntimeAPIError(msg);
    // 400/403/413: this answer was refused and the platform has recorded
    // the outcome; carry on with the next event.
    process.stderr.write(msg + '\n');
  }

  postResponse(id, body) {
    return this.post(`${API_PREFIX}/invocation/${encodeURIComponent(id)}/response`, body, {});
  }

  postError(id, error) {
    const doc = toRapidResponse(error);
    return this.post(`${API_PREFIX}/invocation/${encodeURIComponent(id)}/error`, JSON.stringify(doc), {
      [ERROR_TYPE_HEADER]: headerValue(doc.errorType),
    });
  }

  postInitError(error) {
    const doc = toRapidResponse(error);
    return this.post(`${API_PREFIX}/init/error`, JSON.stringify(doc), {
      [ERROR_TYPE_HEADER]: headerValue(doc.errorType),
    });
  }
}

// fatal ends the runtime when the Runtime API is gone or refuses it.
function fatal(err) {
  process.stderr.write(`${err && err.message ? err.message : err}\n`);
  process.exit(1);
}

// ---------------------------------------------------------------------------
// Loading the handler

const FUNCTION_EXPR = /^([^.]*)\.(.*)$/;

// splitHandler turns "dir/sub/file.a.b" into ["dir/sub/", "file", "a.b"].
export function splitHandler(fullHandler) {
  if (fullHandler.includes('..')) {
    throw new MalformedHandlerName(
      `'${fullHandler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const base = path.basename(fullHandler);
  const moduleRoot = fullHandler.substring(0, fullHandler.lastIndexOf(base));
  const match = base.match(FUNCTION_EXPR);
  if (!match || !match[1] || !match[2]) {
    throw new MalformedHandlerName('Bad handler');
  }
  return [moduleRoot, match[1], match[2]];
}

// hasTypeModule reports whether the package.json nearest to dir says
// "type": "module".
function hasTypeModule(dir) {
  for (;;) {
    if (dir.endsWith(`${path.sep}node_modules`)) return false;
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        return JSON.parse(fs.readFileSync(pj, 'utf8'))?.type === 'module';
      } catch (err) {
        console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, err);
        return false;
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return false;
    dir = parent;
  }
}

function tryRequire(file) {
  return fs.existsSync(file) ? require(file) : undefined;
}

async function tryImport(file) {
  return fs.existsSync(file) ? await import(pathToFileURL(file).href) : undefined;
}

async function loadModule(appRoot, moduleRoot, moduleName) {
  const base = path.resolve(appRoot, moduleRoot, moduleName);
  const extensionless = tryRequire(base);
  if (extensionless) return extensionless;
  const esm = hasTypeModule(path.dirname(base));
  if (!esm) {
    const cjs = tryRequire(base + '.js');
    if (cjs) return cjs;
  }
  const loaded =
    (esm && (await tryImport(base + '.js'))) ||
    (await tryImport(base + '.mjs')) ||
    tryRequire(base + '.cjs');
  if (loaded) return loaded;
  // Node's own resolution (a package in node_modules, NODE_PATH), relative
  // to the code rather than to this file.
  const resolved = require.resolve(moduleName, {
    paths: [appRoot, path.resolve(appRoot, moduleRoot)],
  });
  return require(resolved);
}

// loadHandler imports the function's module (its top-level code runs here,
// once per sandbox) and returns the handler, or throws a Runtime.* error.
export async function loadHandler(appRoot, fullHandler) {
  const [moduleRoot, moduleName, handlerPath] = splitHandler(fullHandler);
  let mod;
  try {
    mod = await loadModule(appRoot, moduleRoot, moduleName);
  } catch (err) {
    if (err instanceof SyntaxError) throw new UserCodeSyntaxError(err);
    if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new ImportModuleError(err);
    }
    throw err;
  }
  const fn = handlerPath.split('.').reduce((obj, key) => obj && obj[key], mod);
  if (!fn) throw new HandlerNotFound(`${fullHandler} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${fullHandler} is not a function`);
  if (NODE_MAJOR >= 24 && fn.length >= 3) {
    throw new CallbackHandlerDeprecated(
      'ERROR: AWS Lambda has removed support for callback-based function handlers starting with Node.js 24. ' +
        'You need to modify this function to use a supported handler signature to use Node.js 24 or later. ' +
        'For more information see https://docs.aws.amazon.com/lambda/latest/dg/nodejs-handler.html.',
    );
  }
  return fn;
}

// ---------------------------------------------------------------------------
// Context

function parseJSONHeader(value, name) {
  if (value === undefined || value === '') return undefined;
  try {
    return JSON.parse(value);
  } catch (err) {
    throw new Error(`Cannot parse ${name} as JSON: ${err.message}`);
  }
}

// invokeData is what the context takes from the invocation and the
// environment.
export function invokeData(headers, env = process.env) {
  const deadline = parseInt(headers['lambda-runtime-deadline-ms'], 10);
  return {
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    clientContext: parseJSONHeader(headers['lambda-runtime-client-context'], 'ClientContext'),
    identity: parseJSONHeader(headers['lambda-runtime-cognito-identity'], 'CognitoIdentity'),
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    // A string, as in Lambda's Node.js runtime.
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis() {
      return deadline - Date.now();
    },
  };
}

// beforeExit holds the one action to take when the event loop is empty.
const beforeExit = {
  action: null,
  set(fn) {
    this.action = fn;
  },
  reset() {
    this.action = null;
  },
  invoke() {
    const fn = beforeExit.action;
    beforeExit.action = null;
    if (fn) fn();
  },
};

// callbackContext builds the callback and the context's succeed, fail, done
// and callbackWaitsForEmptyEventLoop. The first of them (or of the
// handler's promise) to be called decides the outcome; later calls are
// ignored. post(err, result) sends the outcome.
export function callbackContext(post) {
  let finished = false;
  let waitForEmptyEventLoop = true;
  const settle = (err, result, mayWait) => {
    if (finished) return;
    finished = true;
    beforeExit.reset();
    if (err !== undefined && err !== null) {
      post(err);
    } else if (mayWait && waitForEmptyEventLoop) {
      beforeExit.set(() => setImmediate(() => post(null, result)));
    } else {
      post(null, result);
    }
  };
  const callback = (err, result) => settle(err, result, true);
  const done = (err, result) => settle(err, result, false);
  const context = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: (result) => done(null, result),
    fail: (err) => done(err === undefined || err === null ? 'handled' : err),
    done,
  };
  const markFinished = () => {
    finished = true;
  };
  return [callback, context, markFinished];
}

// serialize is the body of a successful answer.
export function serialize(result) {
  const body = JSON.stringify(result === undefined ? null : result);
  return body === undefined ? 'null' : body;
}

function isPromise(x) {
  return x && typeof x.then === 'function';
}

function isAsyncFunction(fn) {
  return fn?.constructor?.name === 'AsyncFunction';
}

// ---------------------------------------------------------------------------
// The invocation loop

class Runtime {
  constructor(api, handler, errorCallbacks) {
    this.api = api;
    this.handler = handler;
    this.isAsync = isAsyncFunction(handler);
    this.errorCallbacks = errorCallbacks;
  }

  scheduleIteration() {
    setImmediate(() => this.handleOnce().catch(fatal));
  }

  async handleOnce() {
    const res = await this.api.next();
    const headers = res.headers;
    const id = headers['lambda-runtime-aws-request-id'];
    currentRequestId = id;
    if (headers['lambda-runtime-trace-id']) {
      process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
    } else {
      delete process.env._X_AMZN_TRACE_ID;
    }
    const next = () => this.scheduleIteration();
    const postError = (err) => {
      logError('Invoke Error', err);
      this.api.postError(id, err).then(next, fatal);
    };
    const post = (err, result) => {
      if (err !== undefined && err !== null) {
        postError(err);
        return;
      }
      let body;
      try {
        body = serialize(result);
      } catch (_) {
        postError(new Error('Unable to stringify response body'));
        return;
      }
      this.api.postResponse(id, body).then(next, fatal);
    };
    const [callback, context, markFinished] = callbackContext(post);

    this.errorCallbacks.uncaughtException = (err) => {
      this.api.postError(id, err).finally(() => process.exit(129));
    };
    this.errorCallbacks.unhandledRejection = (err) => {
      this.api.postError(id, err).finally(() => process.exit(128));
    };
    // The handler neither called back nor settled a promise, and nothing
    // is left to do: a promise that can never settle is an error, anything
    // else answers null.
    beforeExit.set(() => {
      markFinished();
      if (this.isAsync) {
        postError(new NodeJsExit());
      } else {
        post(null, null);
      }
    });

    try {
      Object.assign(context, invokeData(headers));
      const event = JSON.parse(res.body.toString('utf8'));
      const result = this.handler(event, context, callback);
      if (isPromise(result)) {
        result.then(context.succeed, context.fail);
      }
    } catch (err) {
      callback(err);
    }
  }
}

export async function main(argv = process.argv) {
  const address = process.env.AWS_LAMBDA_RUNTIME_API;
  if (!address) {
    process.stderr.write('index.mjs: AWS_LAMBDA_RUNTIME_API is not set\n');
    process.exit(2);
  }
  const handlerName = argv[2] || process.env._HANDLER || '';
  const appRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const api = new RuntimeAPI(address);
  patchConsole();

  const errorCallbacks = {
    uncaughtException: (err) => {
      api.postInitError(err).finally(() => process.exit(129));
    },
    unhandledRejection: (err) => {
      api.postInitError(err).finally(() => process.exit(128));
    },
  };
  process.on('uncaughtException', (err) => {
    logError('Uncaught Exception', err);
    errorCallbacks.uncaughtException(err);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const err = new UnhandledPromiseRejection(reason, promise);
    logError('Unhandled Promise Rejection', err);
    errorCallbacks.unhandledRejection(err);
  });
  process.on('beforeExit', beforeExit.invoke);

  let handler;
  try {
    handler = await loadHandler(appRoot, handlerName);
  } catch (err) {
    logError('Uncaught Exception', err);
    await api.postInitError(err).catch(fatal);
    process.exit(129);
  }
  new Runtime(api, handler, errorCallbacks).scheduleIteration();
}

// Run when started as the program (not when imported by the tests).
function isMain() {
  try {
    return !!process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch (_) {
    return false;
  }
}

if (isMain()) {
  main();
}
