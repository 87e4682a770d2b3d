// An example NestJS 12 microservice on Nest's TCP transport, the kind of
// service patterngate puts an HTTP API in front of (ingress) or lets non-Nest
// apps call (egress). Plain JavaScript, no build step: Node has no decorator
// syntax yet, so Nest's decorators are applied by calling them, exactly what
// TypeScript compiles `@MessagePattern('orders.get')` into.
//
// Environment: HOST (default 0.0.0.0), PORT (default 3000).
//
// Patterns:
//   @MessagePattern({ cmd: 'sum' })     [numbers]          -> their sum
//   @MessagePattern('orders.get')       { id }             -> the order, or
//                                        RpcException({ statusCode: 404, ... })
//   @MessagePattern('orders.list')      { interval_ms }    -> an Observable: each
//                                        order, one every interval_ms (default 50)
//   @MessagePattern('orders.create')    { item, quantity } -> the new order
//   @EventPattern('order_shipped')      { id }             -> marks it shipped
//                                        (events get no reply)
import 'reflect-metadata';
import { Controller, Logger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, MessagePattern, RpcException, Transport } from '@nestjs/microservices';
import * as rxjs from 'rxjs';

const orders = new Map([
  [1, { id: 1, item: 'keyboard', quantity: 1, shipped: false }],
  [2, { id: 2, item: 'monitor', quantity: 2, shipped: false }],
  [3, { id: 3, item: 'cable', quantity: 10, shipped: false }],
]);
const logger = new Logger('Orders');

class OrdersController {
  sum(numbers) {
    return (Array.isArray(numbers) ? numbers : []).reduce((acc, n) => acc + Number(n), 0);
  }

  get(data) {
    const order = orders.get(Number(data?.id));
    if (!order) throw new RpcException({ statusCode: 404, message: `no order ${data?.id}` });
    return order;
  }

  list(data) {
    const all = [...orders.values()];
    const ms = Math.max(0, Number(data?.interval_ms ?? 50) || 0);
    return rxjs.interval(ms).pipe(rxjs.take(all.length), rxjs.map(i => all[i]));
  }

  create(data) {
    if (typeof data?.item !== 'string' || data.item === '')
      throw new RpcException({ statusCode: 400, message: 'item (a string) is required' });
    const id = Math.max(0, ...orders.keys()) + 1;
    const order = { id, item: data.item, quantity: Number(data.quantity ?? 1), shipped: false };
    orders.set(id, order);
    return order;
  }

  shipped(data) {
    const order = orders.get(Number(data?.id));
    if (order) order.shipped = true;
    logger.log(`order ${data?.id} shipped${order ? '' : ' (unknown order)'}`);
  }
}

/** Applies a method decorator the way TypeScript does. */
function decorate(cls, method, decorator) {
  const descriptor = Object.getOwnPropertyDescriptor(cls.prototype, method);
  Object.defineProperty(cls.prototype, method, decorator(cls.prototype, method, descriptor) || descriptor);
}

decorate(OrdersController, 'sum', MessagePattern({ cmd: 'sum' }));
decorate(OrdersController, 'get', MessagePattern('orders.get'));
decorate(OrdersController, 'list', MessagePattern('orders.list'));
decorate(OrdersController, 'create', MessagePattern('orders.create'));
decorate(OrdersController, 'shipped', EventPattern('order_shipped'));
Controller()(OrdersController);

class AppModule {}
Module({ controllers: [OrdersController] })(AppModule);

const app = await NestFactory.createMicroservice(AppModule, {
  transport: Transport.TCP,
  options: { host: process.env.HOST || '0.0.0.0', port: Number(process.env.PORT || 3000) },
});
app.enableShutdownHooks(['SIGTERM', 'SIGINT']);
await app.listen();
logger.log(`listening on ${process.env.HOST || '0.0.0.0'}:${process.env.PORT || 3000}`);
