// A NestJS 12 books microservice written the way the open-source Nest
// projects patterngate was tried on are written: DTO classes checked by a
// global ValidationPipe (class-validator) that throws RpcException with
// statusCode 400, an update handler taking {id, ...changes}, a handler that
// throws RpcException({statusCode: 404}) and handlers answering an envelope
// ({status, headers, body}) for routes with reply "envelope".
//
// Plain JavaScript without a build step: decorators are applied by calling
// them, and the parameter types TypeScript would emit for ValidationPipe
// ("design:paramtypes") are set by hand.
//
// Command line: --port N [--host H] [--quiet] [--custom-serializer]
//   --custom-serializer  the service replies through a custom serializer
//                        ({id, result} packets, as some projects do to
//                        reshape replies): not Nest reply packets.
// Once listening it prints `READY <port>` on stdout; SIGTERM closes it.
//
// Patterns:
//   'books.list'    {author?, limit?}            -> [book...] (by id)
//   'books.get'     {id}                         -> envelope: the book with
//                   Cache-Control, or status 404 and an error body
//   'books.create'  {title, author, rating?}     -> envelope: 201, Location
//   'books.update'  {id, title?, author?, rating?} -> the book, changed only
//                   in the members given; RpcException 404 when missing
//   'books.delete'  {id}                         -> envelope: 204
//   'books.reset'   anything                     -> the two seed books again
//   'books.echo'    anything                     -> the same value
import 'reflect-metadata';
import * as common from '@nestjs/common';
import * as core from '@nestjs/core';
import * as microservices from '@nestjs/microservices';
import * as validator from 'class-validator';

const { Controller, Module, ValidationPipe } = common;
const { MessagePattern, Payload, RpcException, Transport } = microservices;

function parseArgs(argv) {
  const opts = { port: null, host: '127.0.0.1', quiet: false, customSerializer: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--port' && i + 1 < argv.length) opts.port = Number(argv[++i]);
    else if (argv[i] === '--host' && i + 1 < argv.length) opts.host = argv[++i];
    else if (argv[i] === '--quiet') opts.quiet = true;
    else if (argv[i] === '--custom-serializer') opts.customSerializer = true;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!Number.isInteger(opts.port)) throw new Error('usage: main.mjs --port N [--host H] [--quiet] [--custom-serializer]');
  return opts;
}

/** Applies property decorators, as TypeScript's __decorate does. */
function decorateProperties(cls, properties) {
  for (const [name, decorators] of Object.entries(properties))
    for (const decorator of decorators) decorator(cls.prototype, name);
}

/** Applies method and parameter decorators, and the metadata TypeScript
 * emits for the parameter types (ValidationPipe reads it). */
function handler(cls, name, pattern, dto) {
  const proto = cls.prototype;
  if (dto) {
    Reflect.defineMetadata('design:paramtypes', [dto], proto, name);
    Payload()(proto, name, 0);
  }
  const descriptor = Object.getOwnPropertyDescriptor(proto, name);
  Object.defineProperty(proto, name, MessagePattern(pattern)(proto, name, descriptor) || descriptor);
}

const { IsInt, IsNotEmpty, IsOptional, IsString, Max, Min } = validator;

class CreateBookDto {}
decorateProperties(CreateBookDto, {
  title: [IsString(), IsNotEmpty()],
  author: [IsString(), IsNotEmpty()],
  rating: [IsOptional(), IsInt(), Min(1), Max(5)],
});

class UpdateBookDto {}
decorateProperties(UpdateBookDto, {
  id: [IsInt()],
  title: [IsOptional(), IsString(), IsNotEmpty()],
  author: [IsOptional(), IsString(), IsNotEmpty()],
  rating: [IsOptional(), IsInt(), Min(1), Max(5)],
});

class BookIdDto {}
decorateProperties(BookIdDto, { id: [IsInt()] });

class ListBooksDto {}
decorateProperties(ListBooksDto, {
  author: [IsOptional(), IsString()],
  limit: [IsOptional(), IsInt(), Min(1)],
});

const SEED = [
  { id: 1, title: 'Dune', author: 'Frank Herbert', rating: 5 },
  { id: 2, title: 'Emma', author: 'Jane Austen', rating: 4 },
];

class BooksController {
  constructor() { this.reset(); }

  reset() {
    this.books = new Map(SEED.map(book => [book.id, { ...book }]));
    this.nextId = 3;
    return [...this.books.values()];
  }

  list(query) {
    let books = [...this.books.values()];
    if (query.author !== undefined) books = books.filter(book => book.author === query.author);
    return query.limit !== undefined ? books.slice(0, query.limit) : books;
  }

  get({ id }) {
    const book = this.books.get(id);
    if (!book) return { status: 404, body: { statusCode: 404, message: `no book ${id}` } };
    return { headers: { 'Cache-Control': 'max-age=60' }, body: book };
  }

  create(dto) {
    const book = { id: this.nextId++, title: dto.title, author: dto.author, rating: dto.rating ?? null };
    this.books.set(book.id, book);
    return { status: 201, headers: { Location: `/books/${book.id}` }, body: book };
  }

  update({ id, ...changes }) {
    const book = this.books.get(id);
    if (!book) throw new RpcException({ statusCode: 404, message: `no book ${id}` });
    Object.assign(book, changes);
    return book;
  }

  remove({ id }) {
    this.books.delete(id);
    return { status: 204 };
  }

  echo(value) { return value; }
}
handler(BooksController, 'list', 'books.list', ListBooksDto);
handler(BooksController, 'get', 'books.get', BookIdDto);
handler(BooksController, 'create', 'books.create', CreateBookDto);
handler(BooksController, 'update', 'books.update', UpdateBookDto);
handler(BooksController, 'remove', 'books.delete', BookIdDto);
handler(BooksController, 'reset', 'books.reset', null);
handler(BooksController, 'echo', 'books.echo', null);
Controller()(BooksController);

class BooksModule {}
Module({ controllers: [BooksController] })(BooksModule);

/** The reshaping some projects put on every reply: not a Nest reply packet. */
const customSerializer = {
  serialize(packet) {
    return { id: packet.id, result: packet.response ?? null, failure: packet.err ?? null };
  },
};

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const options = { host: opts.host, port: opts.port };
  if (opts.customSerializer) options.serializer = customSerializer;
  const app = await core.NestFactory.createMicroservice(BooksModule, {
    transport: Transport.TCP,
    options,
    logger: opts.quiet ? false : ['error', 'warn'],
  });
  app.useGlobalPipes(new ValidationPipe({
    transform: true,
    whitelist: true,
    forbidNonWhitelisted: true,
    exceptionFactory: errors => new RpcException({
      statusCode: 400,
      message: errors.flatMap(e => Object.values(e.constraints ?? {})),
    }),
  }));
  await app.listen();
  const shutdown = () => app.close().then(() => process.exit(0), () => process.exit(1));
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  process.stdout.write(`READY ${opts.port}\n`);
}

main().catch(err => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
