import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type ClientMessage } from '../protocol.ts';
import { WorkerSession, type SessionEvent, type Trainer, type Transport } from './session.ts';

/** A transport the test drives: what the session sends is kept, connections and server messages are the test's to make. */
class TestTransport implements Transport {
  readonly sent: ClientMessage[] = [];
  private onMessageHandler: (payload: unknown) => void = () => {};
  private onConnectionHandler: (connected: boolean) => void = () => {};
  send(message: ClientMessage): void {
    this.sent.push(message);
  }
  onMessage(handler: (payload: unknown) => void): void {
    this.onMessageHandler = handler;
  }
  onConnection(handler: (connected: boolean) => void): void {
    this.onConnectionHandler = handler;
  }
  close(): void {}
  connect(up: boolean): void {
    this.onConnectionHandler(up);
  }
  deliver(payload: unknown): void {
    this.onMessageHandler(payload);
  }
  count(type: ClientMessage['type']): number {
    return this.sent.filter((m) => m.type === type).length;
  }
}

const idleTrainer: Trainer = { train: () => Promise.reject(new Error('no lease is given in these tests')) };
const welcome = { type: 'welcome', workerId: 'w1', protocol: PROTOCOL_VERSION, experimentId: null };

function session(): { transport: TestTransport; events: SessionEvent[]; session: WorkerSession } {
  const transport = new TestTransport();
  const events: SessionEvent[] = [];
  const s = new WorkerSession(transport, idleTrainer, {
    hello: { backend: 'wasm', adapter: 'test', speed: 1, client: 'node' },
    now: () => 0,
    onEvent: (e) => events.push(e),
  });
  return { transport, events, session: s };
}

describe('WorkerSession', () => {
  it('says hello on every connection and asks for work after each welcome', () => {
    const { transport, events } = session();
    transport.connect(true);
    expect(transport.sent).toEqual([expect.objectContaining({ type: 'hello', protocol: PROTOCOL_VERSION, client: 'node' })]);
    transport.deliver(welcome);
    expect(transport.count('ready')).toBe(1);
    // A second welcome while the request is unanswered does not ask twice.
    transport.deliver(welcome);
    expect(transport.count('ready')).toBe(1);
    expect(events.map((e) => e.kind)).toEqual(['connected']);
  });

  it('asks for work again after a reconnect when its request went down with the connection', () => {
    const { transport, events } = session();
    transport.connect(true);
    transport.deliver(welcome);
    expect(transport.count('ready')).toBe(1);
    // The server closes before it answers; the worker reconnects (to it, restarted, or another).
    transport.connect(false);
    transport.connect(true);
    expect(transport.count('hello')).toBe(2);
    expect(transport.count('ready')).toBe(1);
    transport.deliver(welcome);
    expect(transport.count('ready')).toBe(2);
    expect(events.map((e) => e.kind)).toEqual(['connected', 'disconnected', 'connected']);
  });

  it('does not ask for work while paused, across a reconnect, and asks once resumed', () => {
    const { transport, session: s } = session();
    s.setPaused(true);
    transport.connect(true);
    transport.deliver(welcome);
    transport.connect(false);
    transport.connect(true);
    transport.deliver(welcome);
    expect(transport.count('ready')).toBe(0);
    s.setPaused(false);
    expect(transport.count('ready')).toBe(1);
  });

  it('reports a message it does not understand as an error and carries on', () => {
    const { transport, events } = session();
    transport.connect(true);
    transport.deliver({ type: 'lease', lease: { leaseId: 'x' } });
    transport.deliver(welcome);
    expect(events.find((e) => e.kind === 'error')).toMatchObject({ message: expect.stringMatching(/does not understand/) });
    expect(transport.count('ready')).toBe(1);
  });
});
