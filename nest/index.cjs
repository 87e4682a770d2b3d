'use strict';
// CommonJS entry point (`require('patterngate-nest')`): loads @nestjs/* from
// the app's node_modules. Nest 12 is ESM-only: requiring it needs a Node.js
// with require(esm) (20.19+, 22.12+), which an app that requires Nest 12
// itself has anyway.
const { buildPatterngate } = require('./lib/build.cjs');

module.exports = buildPatterngate({
  common: require('@nestjs/common'),
  core: require('@nestjs/core'),
  microservices: require('@nestjs/microservices'),
  constants: require('@nestjs/microservices/constants.js'),
  patternHandler: require('@nestjs/microservices/enums/pattern-handler.enum.js'),
});
