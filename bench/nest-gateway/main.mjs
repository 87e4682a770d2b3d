// The NestJS HTTP gateway a user would write by hand in front of a Nest TCP
// microservice: the comparison that patterngate's performance is judged
// against (bench/http-compare, bench/run). One controller:
//
//   POST /sum      ->   this.client.send({ cmd: 'sum' }, body)
//   POST /echo     ->   this.client.send({ cmd: 'echo' }, body)
//   POST /stream   ->   this.client.send({ cmd: 'stream' }, body), each value
//                       written as one NDJSON line as it arrives (@Res())
//
// with a ClientProxy from ClientsModule.register (Transport.TCP), served by
// @nestjs/platform-express, Nest 12 (versions pinned by package-lock.json).
// Plain JavaScript ESM, no build step: Node 20 has no decorator syntax, so
// the decorators are applied by calling them, as TypeScript would.
//
// Command line:
//   node bench/nest-gateway/main.mjs --port N --upstream HOST:PORT
//        [--host H] [--lazy] [--body-limit L] [--verbose]
//   --port N            HTTP port (0: let the kernel pick one)
//   --upstream H:P      the Nest TCP service ({cmd:'sum'})
//   --host H            address to listen on (default 127.0.0.1)
//   --lazy              do not connect to the upstream before listening
//                       (Nest's own default); otherwise the client connects
//                       first and a refused connection fails the start
//   --body-limit L      the JSON body parser's limit (body-parser's form:
//                       2mb); default Express's 100kb
//   --verbose           Nest's logs on stderr (default: none at all)
//   --quiet             accepted for symmetry with the test services (the
//                       default already is quiet)
//
// Once listening it prints exactly one line on stdout, `READY <port>`.
// SIGTERM or SIGINT closes the app and exits 0. Bad arguments exit 2, a
// failed start exits 1.
//
// The handlers set @HttpCode(200): a bare @Post() answers 201, while
// patterngate answers 200 for a send route; both then answer the same.
import 'reflect-metadata';
import { Body, Controller, HttpCode, Inject, Module, Post, Res } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, Transport } from '@nestjs/microservices';

const USAGE = 'usage: main.mjs --port N --upstream HOST:PORT [--host H] [--lazy] [--body-limit L] [--verbose]';
const MATH = 'MATH_SERVICE';

function usage(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { port: null, host: '127.0.0.1', upstream: null, lazy: false, verbose: false,
                 bodyLimit: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--port' || arg === '--host' || arg === '--upstream') {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      opts[arg.slice(2)] = argv[++i];
    } else if (arg === '--body-limit') {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      opts.bodyLimit = argv[++i];
    } else if (arg === '--lazy') {
      opts.lazy = true;
    } else if (arg === '--verbose') {
      opts.verbose = true;
    } else if (arg === '--quiet') {
      opts.verbose = false;
    } else {
      usage(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (opts.port === null || !/^\d+$/.test(opts.port) || Number(opts.port) > 65535)
    usage('--port N (0..65535) is required');
  opts.port = Number(opts.port);
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(opts.upstream ?? '');
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)
    usage('--upstream HOST:PORT is required');
  opts.upstreamHost = m[1].replace(/^\[(.*)\]$/, '$1');
  opts.upstreamPort = Number(m[2]);
  return opts;
}

/** Applies a method decorator the way TypeScript would. */
function decorateMethod(proto, name, ...decorators) {
  for (const decorator of decorators.reverse()) {
    const descriptor = Object.getOwnPropertyDescriptor(proto, name);
    const result = decorator(proto, name, descriptor);
    Object.defineProperty(proto, name, result || descriptor);
  }
}

/** The controller, as a user would write it in TypeScript:
 *
 *   @Controller()
 *   export class SumController {
 *     constructor(@Inject(MATH) private readonly client: ClientProxy) {}
 *     @Post('sum') @HttpCode(200)
 *     sum(@Body() body: number[]) {
 *       return this.client.send({ cmd: 'sum' }, body);
 *     }
 *     @Post('echo') @HttpCode(200)
 *     echo(@Body() body: unknown) {
 *       return this.client.send({ cmd: 'echo' }, body);
 *     }
 *     @Post('stream')
 *     stream(@Body() body: unknown, @Res() res: Response) {
 *       res.status(200).type('application/x-ndjson');
 *       this.client.send({ cmd: 'stream' }, body).subscribe({
 *         next: v => res.write(JSON.stringify(v) + '\n'),
 *         error: () => res.end(),
 *         complete: () => res.end(),
 *       });
 *     }
 *   }
 */
function makeController() {
  class SumController {
    constructor(client) {
      this.client = client;
    }
    sum(body) {
      return this.client.send({ cmd: 'sum' }, body);
    }
    echo(body) {
      return this.client.send({ cmd: 'echo' }, body);
    }
    stream(body, res) {
      res.status(200).type('application/x-ndjson');
      this.client.send({ cmd: 'stream' }, body).subscribe({
        next: v => res.write(JSON.stringify(v) + '\n'),
        error: () => res.end(),
        complete: () => res.end(),
      });
    }
  }
  Inject(MATH)(SumController, undefined, 0);
  decorateMethod(SumController.prototype, 'sum', Post('sum'), HttpCode(200));
  Body()(SumController.prototype, 'sum', 0);
  decorateMethod(SumController.prototype, 'echo', Post('echo'), HttpCode(200));
  Body()(SumController.prototype, 'echo', 0);
  decorateMethod(SumController.prototype, 'stream', Post('stream'));
  Body()(SumController.prototype, 'stream', 0);
  Res()(SumController.prototype, 'stream', 1);
  return Controller()(SumController) || SumController;
}

function makeModule(opts) {
  class AppModule {}
  const imports = [ClientsModule.register([{
    name: MATH,
    transport: Transport.TCP,
    options: { host: opts.upstreamHost, port: opts.upstreamPort },
  }])];
  return Module({ imports, controllers: [makeController()] })(AppModule) || AppModule;
}

function exitOnSignals(app) {
  let closing = false;
  const onSignal = () => {
    if (closing) return;
    closing = true;
    const timer = setTimeout(() => process.exit(1), 5000);
    timer.unref();
    app.close().then(() => process.exit(0), err => {
      process.stderr.write(`close failed: ${err?.stack ?? err}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function run() {
  const opts = parseArgs(process.argv.slice(2));
  const app = await NestFactory.create(makeModule(opts), { logger: opts.verbose ? undefined : false });
  exitOnSignals(app);
  if (opts.bodyLimit !== null) app.useBodyParser('json', { limit: opts.bodyLimit });
  if (!opts.lazy) await app.get(MATH).connect();
  await app.listen(opts.port, opts.host);
  const port = app.getHttpServer().address().port;
  process.stdout.write(`READY ${port}\n`);
}

run().catch(err => {
  process.stderr.write(`nest gateway failed to start: ${err?.stack ?? err}\n`);
  process.exit(1);
});
