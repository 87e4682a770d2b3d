'use strict';
// The module itself, built from the app's own Nest packages.
//
// This file imports nothing from Nest: index.cjs (require) and index.mjs
// (import) load @nestjs/* from the app's node_modules and hand them to
// buildPatterngate(). Both entry points load this one CommonJS file (an ES
// module imports CommonJS through the same cache), so an app that reaches
// the package both ways still gets one PatterngateModule per Nest copy.
//
// Plain JavaScript without a build step: decorators are applied by calling
// them, the way TypeScript's emitted code does.

/** The reserved message pattern the module answers. */
const PATTERNGATE_HANDLERS_PATTERN = Object.freeze({ patterngate: 'handlers' });

/** One build per Nest copy, keyed by that copy's DiscoveryService class. */
const builds = new WeakMap();

/** Applies a method decorator the way TypeScript's __decorate does. */
function decorateMethod(proto, name, decorator) {
  const descriptor = Object.getOwnPropertyDescriptor(proto, name);
  const result = decorator(proto, name, descriptor);
  Object.defineProperty(proto, name, result || descriptor);
}

/** Applies a class decorator; returns the class it yields. */
function decorateClass(cls, decorator) {
  return decorator(cls) || cls;
}

/**
 * A text that is equal for two patterns exactly when Nest routes them the
 * same way (object keys sorted, recursively): used to drop duplicates.
 */
function patternKey(pattern) {
  const canonical = value => {
    if (Array.isArray(value)) return value.map(canonical);
    if (value === null || typeof value !== 'object') return value;
    const sorted = {};
    for (const key of Object.keys(value).sort()) sorted[key] = canonical(value[key]);
    return sorted;
  };
  return JSON.stringify(canonical(pattern)) ?? String(pattern);
}

/**
 * Builds { PatterngateModule, PATTERNGATE_HANDLERS_PATTERN } for one Nest
 * copy. `nest` is { common, core, microservices, constants, patternHandler }:
 * the modules @nestjs/common, @nestjs/core, @nestjs/microservices,
 * @nestjs/microservices/constants.js and
 * @nestjs/microservices/enums/pattern-handler.enum.js of the app.
 */
function buildPatterngate(nest) {
  const { common, core, microservices, constants } = nest;
  const cached = builds.get(core.DiscoveryService);
  if (cached) return cached;

  const { PATTERN_METADATA, PATTERN_HANDLER_METADATA, TRANSPORT_METADATA } = constants;
  const { PatternHandler } = nest.patternHandler;

  /**
   * The transport whose server received the request, when it can be told
   * from the context; undefined otherwise (then no handler is filtered out).
   */
  const transportOf = context =>
    context instanceof microservices.TcpContext ? microservices.Transport.TCP : undefined;

  /**
   * Every pattern handler of the app's controllers, as Nest's
   * ListenerMetadataExplorer and ListenersController find and register them:
   * each method of the controller's prototype chain that carries a handler
   * type, one entry per pattern of its pattern list, without the handlers
   * bound to another transport than `transport`. `ownController` (the
   * module's own) is left out: the reserved pattern is not listed.
   */
  function listHandlers(discovery, scanner, transport, ownController) {
    const handlers = [];
    const seen = new Set();
    for (const wrapper of discovery.getControllers()) {
      if (wrapper.metatype === ownController) continue;
      const instance = wrapper.instance;
      const proto = instance ? Object.getPrototypeOf(instance) : wrapper.metatype?.prototype;
      if (!proto) continue;
      for (const name of scanner.getAllMethodNames(proto)) {
        const method = proto[name];
        const type = Reflect.getMetadata(PATTERN_HANDLER_METADATA, method);
        if (type === undefined) continue;
        const bound = Reflect.getMetadata(TRANSPORT_METADATA, method);
        if (bound !== undefined && transport !== undefined && bound !== transport) continue;
        const kind = type === PatternHandler.EVENT ? 'emit' : 'send';
        // Nest 10 to 12 store an array of patterns; a single value is one.
        for (const pattern of [].concat(Reflect.getMetadata(PATTERN_METADATA, method) ?? [])) {
          const key = `${kind} ${patternKey(pattern)}`;
          if (seen.has(key)) continue;
          seen.add(key);
          handlers.push({ pattern, kind });
        }
      }
    }
    return handlers;
  }

  class PatterngateController {
    constructor(discovery, scanner) {
      this.discovery = discovery;
      this.scanner = scanner;
    }

    handlers(_data, context) {
      return listHandlers(this.discovery, this.scanner, transportOf(context), this.constructor);
    }
  }
  common.Inject(core.DiscoveryService)(PatterngateController, undefined, 0);
  common.Inject(core.MetadataScanner)(PatterngateController, undefined, 1);
  const proto = PatterngateController.prototype;
  decorateMethod(proto, 'handlers', microservices.MessagePattern(PATTERNGATE_HANDLERS_PATTERN));
  microservices.Payload()(proto, 'handlers', 0);
  microservices.Ctx()(proto, 'handlers', 1);
  const Controller = decorateClass(PatterngateController, common.Controller());

  class PatterngateModule {}
  const Module = decorateClass(PatterngateModule, common.Module({
    imports: [core.DiscoveryModule],
    controllers: [Controller],
  }));

  const built = Object.freeze({ PatterngateModule: Module, PATTERNGATE_HANDLERS_PATTERN });
  builds.set(core.DiscoveryService, built);
  return built;
}

module.exports = { buildPatterngate, PATTERNGATE_HANDLERS_PATTERN };
