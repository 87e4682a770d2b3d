// A Nest 11 app that imports patterngate-nest as an ES module: see ../app.cjs.
import 'reflect-metadata';
import * as common from '@nestjs/common';
import * as core from '@nestjs/core';
import * as microservices from '@nestjs/microservices';
import { PatterngateModule } from 'patterngate-nest';
import app from '../app.cjs';

app.main({ version: '11 esm', common, core, microservices }, { PatterngateModule });
