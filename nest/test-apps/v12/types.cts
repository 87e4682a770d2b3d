// Type test: a CommonJS TypeScript app requiring patterngate-nest (resolves
// the "require" condition: index.d.cts).
import common = require('@nestjs/common');
import patterngate = require('patterngate-nest');

class AppModule {}
common.Module({ imports: [patterngate.PatterngateModule] })(AppModule);

const handler: patterngate.PatterngateHandler = { pattern: { cmd: 'sum' }, kind: 'send' };
// @ts-expect-error: kind is 'send' or 'emit'
const wrong: patterngate.PatterngateHandler = { pattern: 'echo', kind: 'request' };
// @ts-expect-error: not a module of the package
patterngate.PatterngateController;
export = { handler, wrong };
