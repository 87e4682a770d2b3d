// Types of patterngate-nest for `require('patterngate-nest')` (and for
// TypeScript's CommonJS output). index.d.mts declares the same for `import`.

/** One pattern handler of the app, as the reserved pattern lists it. */
export interface PatterngateHandler {
  /** The pattern as the app declared it: usually a string or an object. */
  pattern: string | number | { [key: string]: unknown };
  /** `send` for @MessagePattern (request-response), `emit` for @EventPattern. */
  kind: 'send' | 'emit';
}

/** The reserved message pattern, answered with a PatterngateHandler[]. */
export declare const PATTERNGATE_HANDLERS_PATTERN: { readonly patterngate: 'handlers' };

/**
 * Import it into the app's root module (`imports: [PatterngateModule]`): it
 * answers PATTERNGATE_HANDLERS_PATTERN with every @MessagePattern and
 * @EventPattern of the app's controllers.
 */
export declare class PatterngateModule {}
