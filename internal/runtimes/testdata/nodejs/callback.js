'use strict';

exports.handler = (event, context, callback) => {
  setTimeout(() => callback(null, { via: 'callback', event }), 10);
};

exports.error = (event, context, callback) => {
  callback(new RangeError('callback error'));
};

// Answers at once, but a 1 s timer is still pending: with
// callbackWaitsForEmptyEventLoop the answer waits for it.
exports.waits = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = event.wait;
  setTimeout(() => {}, 1000);
  callback(null, { start: Date.now() });
};

exports.succeed = (event, context) => {
  context.succeed({ via: 'context.succeed' });
};
