// NestJS 10 test service: see ../service.mjs for the command line.
// Nest 10 is CommonJS: take each package's module.exports whole.
import 'reflect-metadata';
import common from '@nestjs/common';
import core from '@nestjs/core';
import microservices from '@nestjs/microservices';
import * as rxjs from 'rxjs';
import { main } from '../service.mjs';

main({ version: 'v10', common, core, microservices, rxjs });
