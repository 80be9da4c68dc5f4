exports.handler = async () => ({ where: 'lib/deep.cjs' });
