// ES module entry point (`import ... from 'patterngate-nest'`): imports
// @nestjs/* from the app's node_modules, whether they are ES modules (Nest 12)
// or CommonJS (Nest 10 and 11).
import * as common from '@nestjs/common';
import * as core from '@nestjs/core';
import * as microservices from '@nestjs/microservices';
import * as constants from '@nestjs/microservices/constants.js';
import * as patternHandler from '@nestjs/microservices/enums/pattern-handler.enum.js';
import build from './lib/build.cjs';

/**
 * The module's exports whole: a CommonJS module's `module.exports` (its
 * default export; Node's detection of named exports may miss some), or the
 * namespace of an ES module (Nest 12 has no default exports).
 */
function whole(namespace) {
  const value = namespace.default;
  return value !== null && typeof value === 'object' ? value : namespace;
}

export const { PatterngateModule, PATTERNGATE_HANDLERS_PATTERN } = build.buildPatterngate({
  common: whole(common),
  core: whole(core),
  microservices: whole(microservices),
  constants: whole(constants),
  patternHandler: whole(patternHandler),
});
