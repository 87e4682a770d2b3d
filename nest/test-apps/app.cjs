'use strict';
// The Nest app the tests of patterngate-nest run, for every Nest version.
//
// This file loads no package: each test-apps/<version>/esm.mjs (import)
// and test-apps/<version>/cjs.cjs (require) loads its own @nestjs/* and the
// installed patterngate-nest and hands them to main(). Plain JavaScript:
// decorators are applied by calling them, as TypeScript's emitted code does.
//
// Command line (after `node test-apps/<version>/<entry>`):
//   --without-module   leave PatterngateModule out of the app
//   --hybrid           an HTTP app (port picked by the kernel) with the TCP
//                      microservice connected to it (app.connectMicroservice)
// The TCP microservice listens on 127.0.0.1 at a port the kernel picks. Once
// listening, the app prints one line on stdout, `READY <tcp port>` or, with
// --hybrid, `READY <tcp port> <http port>`; Nest logs go to stderr. SIGTERM
// closes the app and exits 0.
//
// Handlers (the exact list patterngate-nest must report is in
// test/handlers.test.mjs, EXPECTED):
//   BaseController (inherited by MainController)
//     ping                 'base.ping'
//   MainController
//     echo                 'echo'
//     sum                  {cmd:'sum'}
//     nested               {cmd:'user', op:{name:'get', version:2}}
//     userCreated          event 'user_created'
//     orderPlaced          event {evt:'order', status:{code:'placed'}}
//     multi                ['multi.a', {cmd:'multi', n:1}] (one decorator, two patterns)
//     twice                'twice.first', then 'twice.second' (two decorators)
//     tcpOnly              'tcp_only' bound to Transport.TCP
//     natsOnly             'nats_only' bound to Transport.NATS
//     helper               no decorator
//   FeatureController (in FeatureModule, imported by the root module)
//     feature              {cmd:'feature'}
//     alsoUserCreated      event 'user_created' (a second listener)
//   HttpController
//     health               GET /health -> 'ok' (served in --hybrid only)
// Every request handler answers {handled: <method name>}.

/** Applies a method decorator the way TypeScript's __decorate does. */
function decorateMethod(proto, name, ...decorators) {
  // TypeScript applies the decorator written last (closest to the method)
  // first; `decorators` is given in the order they are written.
  for (const decorator of decorators.slice().reverse()) {
    const descriptor = Object.getOwnPropertyDescriptor(proto, name);
    const result = decorator(proto, name, descriptor);
    Object.defineProperty(proto, name, result || descriptor);
  }
}

function decorateClass(cls, decorator) {
  return decorator(cls) || cls;
}

/** Builds the root module; `nest` holds the version's packages. */
function makeAppModule(nest, patterngate) {
  const { common, microservices } = nest;
  const { MessagePattern, EventPattern, Transport } = microservices;
  const handled = name => ({ handled: name });

  class BaseController {
    ping() { return handled('ping'); }
  }
  decorateMethod(BaseController.prototype, 'ping', MessagePattern('base.ping'));

  class MainController extends BaseController {
    echo() { return handled('echo'); }
    sum() { return handled('sum'); }
    nested() { return handled('nested'); }
    userCreated() {}
    orderPlaced() {}
    multi() { return handled('multi'); }
    twice() { return handled('twice'); }
    tcpOnly() { return handled('tcpOnly'); }
    natsOnly() { return handled('natsOnly'); }
    helper() { return handled('helper'); }
  }
  const main = MainController.prototype;
  decorateMethod(main, 'echo', MessagePattern('echo'));
  decorateMethod(main, 'sum', MessagePattern({ cmd: 'sum' }));
  decorateMethod(main, 'nested', MessagePattern({ cmd: 'user', op: { name: 'get', version: 2 } }));
  decorateMethod(main, 'userCreated', EventPattern('user_created'));
  decorateMethod(main, 'orderPlaced', EventPattern({ evt: 'order', status: { code: 'placed' } }));
  decorateMethod(main, 'multi', MessagePattern(['multi.a', { cmd: 'multi', n: 1 }]));
  // As in TypeScript: @MessagePattern('twice.second') @MessagePattern('twice.first') twice()
  decorateMethod(main, 'twice', MessagePattern('twice.second'), MessagePattern('twice.first'));
  decorateMethod(main, 'tcpOnly', MessagePattern('tcp_only', Transport.TCP));
  decorateMethod(main, 'natsOnly', MessagePattern('nats_only', Transport.NATS));

  class FeatureController {
    feature() { return handled('feature'); }
    alsoUserCreated() {}
  }
  const feature = FeatureController.prototype;
  decorateMethod(feature, 'feature', MessagePattern({ cmd: 'feature' }));
  decorateMethod(feature, 'alsoUserCreated', EventPattern('user_created'));

  class HttpController {
    health() { return 'ok'; }
  }
  decorateMethod(HttpController.prototype, 'health', common.Get('health'));

  class FeatureModule {}
  const Feature = decorateClass(FeatureModule, common.Module({
    controllers: [decorateClass(FeatureController, common.Controller())],
  }));

  class AppModule {}
  return decorateClass(AppModule, common.Module({
    imports: patterngate ? [Feature, patterngate.PatterngateModule] : [Feature],
    controllers: [decorateClass(MainController, common.Controller()),
                  decorateClass(HttpController, common.Controller())],
  }));
}

/** A Nest LoggerService writing everything to stderr. */
function stderrLogger(tag) {
  const write = level => (...parts) => {
    const text = parts.map(part => part instanceof Error ? part.stack
      : typeof part === 'string' ? part : JSON.stringify(part));
    process.stderr.write(`[${tag}] ${level} ${text.join(' ')}\n`);
  };
  return { log: write('LOG'), error: write('ERROR'), warn: write('WARN'),
           debug: write('DEBUG'), verbose: write('VERBOSE'), fatal: write('FATAL') };
}

/** The TCP server strategy on 127.0.0.1 at a port the kernel picks. */
function tcpServer(nest) {
  const server = new nest.microservices.ServerTCP({ host: '127.0.0.1', port: 0 });
  // Nest 10 takes port 0 for "unset" and would listen on 3000.
  server.port = 0;
  return server;
}

function exitOnSigterm(app) {
  process.once('SIGTERM', () => {
    // Nest 10 keeps accepted sockets open after close(): exit regardless.
    setTimeout(() => process.exit(1), 10000).unref();
    app.close().then(() => process.exit(0), err => {
      process.stderr.write(`close failed: ${err?.stack ?? err}\n`);
      process.exit(1);
    });
  });
}

async function start(nest, patterngate, argv) {
  const known = ['--without-module', '--hybrid'];
  const unknown = argv.filter(arg => !known.includes(arg));
  if (unknown.length) {
    process.stderr.write(`unknown arguments ${unknown.join(' ')}; known: ${known.join(' ')}\n`);
    process.exit(2);
  }
  const appModule = makeAppModule(nest, argv.includes('--without-module') ? null : patterngate);
  const logger = stderrLogger(`nest ${nest.version}`);
  const server = tcpServer(nest);
  if (argv.includes('--hybrid')) {
    const app = await nest.core.NestFactory.create(appModule, { logger });
    app.connectMicroservice({ strategy: server });
    exitOnSigterm(app);
    await app.startAllMicroservices();
    await app.listen(0, '127.0.0.1');
    const httpPort = app.getHttpServer().address().port;
    process.stdout.write(`READY ${server.server.address().port} ${httpPort}\n`);
  } else {
    const app = await nest.core.NestFactory.createMicroservice(appModule, { strategy: server, logger });
    exitOnSigterm(app);
    await app.listen();
    process.stdout.write(`READY ${server.server.address().port}\n`);
  }
}

/**
 * Entry point. `nest` is { version, common, core, microservices } of the
 * caller's node_modules; `patterngate` is the patterngate-nest package.
 */
function main(nest, patterngate) {
  start(nest, patterngate, process.argv.slice(2)).catch(err => {
    process.stderr.write(`nest ${nest.version} app failed to start: ${err?.stack ?? err}\n`);
    process.exit(1);
  });
}

module.exports = { main };
