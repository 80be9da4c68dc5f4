import thing from 'ember-no-such-package-xyz';

export const handler = async () => thing;
