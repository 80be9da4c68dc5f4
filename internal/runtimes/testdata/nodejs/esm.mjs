console.log('module esm loaded');
const started = await Promise.resolve('top-level await ok');

export const handler = async (event, context) => ({ esm: true, started, event });

export default { handler: async () => 'default export' };
