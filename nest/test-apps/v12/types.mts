// Type test: an ES module TypeScript app importing patterngate-nest
// (resolves the "import" condition: index.d.mts).
import { Module } from '@nestjs/common';
import { PATTERNGATE_HANDLERS_PATTERN, PatterngateModule } from 'patterngate-nest';
import type { PatterngateHandler } from 'patterngate-nest';

class AppModule {}
Module({ imports: [PatterngateModule] })(AppModule);

const reserved: { patterngate: 'handlers' } = PATTERNGATE_HANDLERS_PATTERN;
const handlers: PatterngateHandler[] = [
  { pattern: 'echo', kind: 'send' },
  { pattern: { cmd: 'sum', op: { name: 'get' } }, kind: 'emit' },
];
// @ts-expect-error: kind is 'send' or 'emit'
const wrong: PatterngateHandler = { pattern: 'echo', kind: 'request' };
// @ts-expect-error: the reserved pattern is read-only
PATTERNGATE_HANDLERS_PATTERN.patterngate = 'other';
export { reserved, handlers, wrong };
