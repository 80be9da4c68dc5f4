export const handler = async () => ({ typeModule: true, isESM: typeof require === 'undefined' });
