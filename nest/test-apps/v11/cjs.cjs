'use strict';
// A Nest 11 app that requires patterngate-nest (CommonJS): see ../app.cjs.
require('reflect-metadata');
const common = require('@nestjs/common');
const core = require('@nestjs/core');
const microservices = require('@nestjs/microservices');
const { PatterngateModule } = require('patterngate-nest');
const app = require('../app.cjs');

app.main({ version: '11 cjs', common, core, microservices }, { PatterngateModule });
