// NestJS 12 test service: see ../service.mjs for the command line.
import 'reflect-metadata';
import * as common from '@nestjs/common';
import * as core from '@nestjs/core';
import * as microservices from '@nestjs/microservices';
import * as rxjs from 'rxjs';
import { main } from '../service.mjs';

main({ version: 'v12', common, core, microservices, rxjs });
