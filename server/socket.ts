/**
 * The only socket.io code of the server. Every worker message is rate
 * limited, then parsed by the protocol schema, before the coordinator sees
 * it; a peer that keeps sending garbage is disconnected. Leaderboard pages
 * join the `/live` namespace and get the coordinator's events.
 */
import { randomBytes } from 'node:crypto';
import type { Server, Socket } from 'socket.io';
import { MESSAGE_EVENT, Refusal, parseClientMessage, type ServerMessage } from '../shared/protocol.ts';
import type { Coordinator } from './coordinator.ts';
import { publicIndividual } from './http/views.ts';
import { KeyedLimiter } from './rate-limit.ts';

/** Bad messages after which a connection is closed. */
export const MAX_OFFENCES = 5;

export interface SocketOptions {
  readonly clock?: () => number;
  /** Messages per second per connection (burst is 4x). */
  readonly messagesPerSecond?: number;
  /** Hellos per minute per address. */
  readonly hellosPerMinute?: number;
  /** Results per minute per address (burst as many). */
  readonly resultsPerMinute?: number;
}

export function attachSockets(io: Server, coordinator: Coordinator, options: SocketOptions = {}): { sendTo: (workerId: string, message: ServerMessage) => void } {
  const clock = options.clock ?? Date.now;
  const perSecond = options.messagesPerSecond ?? 10;
  const messageLimiter = new KeyedLimiter(perSecond * 4, perSecond);
  const helloLimiter = new KeyedLimiter(options.hellosPerMinute ?? 30, (options.hellosPerMinute ?? 30) / 60);
  const resultLimiter = new KeyedLimiter(options.resultsPerMinute ?? 240, (options.resultsPerMinute ?? 240) / 60);
  const sockets = new Map<string, Socket>();

  const sendTo = (workerId: string, message: ServerMessage): void => {
    sockets.get(workerId)?.emit(MESSAGE_EVENT, message);
  };

  io.on('connection', (socket) => {
    const workerId = `w${randomBytes(6).toString('hex')}`;
    const address = socket.handshake.address;
    let offences = 0;
    let greeted = false;
    sockets.set(workerId, socket);

    const refuse = (code: (typeof Refusal)[keyof typeof Refusal], message: string, offence: boolean): void => {
      socket.emit(MESSAGE_EVENT, { type: 'refused', code, message } satisfies ServerMessage);
      if (offence && ++offences >= MAX_OFFENCES) socket.disconnect(true);
    };

    socket.onAny((event: unknown, payload: unknown) => {
      const now = clock();
      if (!messageLimiter.take(workerId, now)) {
        refuse(Refusal.RateLimited, `more than ${perSecond} messages per second`, true);
        return;
      }
      if (event !== MESSAGE_EVENT) {
        refuse(Refusal.BadMessage, `unknown event; send every message on "${MESSAGE_EVENT}"`, true);
        return;
      }
      const parsed = parseClientMessage(payload);
      if (!parsed.ok) {
        refuse(Refusal.BadMessage, parsed.error, true);
        return;
      }
      const message = parsed.value;
      if (message.type === 'hello') {
        if (!helloLimiter.take(address, now)) {
          refuse(Refusal.RateLimited, 'too many hellos from this address', true);
          return;
        }
        const replies = coordinator.hello(workerId, message, address);
        greeted = replies[0]?.type === 'welcome';
        for (const reply of replies) socket.emit(MESSAGE_EVENT, reply);
        return;
      }
      if (!greeted) {
        refuse(Refusal.NotHello, 'say hello first', true);
        return;
      }
      let reply: ServerMessage | null = null;
      switch (message.type) {
        case 'ready':
          reply = coordinator.requestWork(workerId);
          break;
        case 'progress':
          reply = coordinator.progress(workerId, message.leaseId, message.step);
          break;
        case 'result':
          if (!resultLimiter.take(address, now)) {
            refuse(Refusal.RateLimited, 'too many results from this address', true);
            return;
          }
          reply = coordinator.submitResult(workerId, message);
          break;
        case 'release':
          reply = coordinator.release(workerId, message.leaseId);
          break;
      }
      if (reply !== null) {
        socket.emit(MESSAGE_EVENT, reply);
        if (reply.type === 'refused' && (reply.code === Refusal.NotYourLease || reply.code === Refusal.UnknownLease)) offences++;
        if (offences >= MAX_OFFENCES) socket.disconnect(true);
      }
    });

    socket.on('disconnect', () => {
      sockets.delete(workerId);
      coordinator.disconnected(workerId);
    });
  });

  // Live pages: read-only, they only choose which experiment to watch.
  const live = io.of('/live');
  live.on('connection', (socket) => {
    socket.on('watch', (experimentId: unknown) => {
      if (typeof experimentId !== 'string' || !/^[a-z0-9-]{1,64}$/.test(experimentId)) return;
      for (const room of socket.rooms) if (room !== socket.id) void socket.leave(room);
      void socket.join(`exp:${experimentId}`);
    });
  });
  const pendingStatus = new Set<string>();
  coordinator.onEvent((event) => {
    const room = live.to(`exp:${event.experimentId}`);
    if (event.kind === 'individual') room.emit('individual', publicIndividual(event.individual));
    else if (event.kind === 'removed') room.emit('removed', { id: event.id });
    else if (event.kind === 'remedy') room.emit('remedy', { remedy: event.remedy, at: event.at });
    // Status changes come in bursts; pages re-read the summary at most once a second.
    if (!pendingStatus.has(event.experimentId)) {
      pendingStatus.add(event.experimentId);
      setTimeout(() => {
        pendingStatus.delete(event.experimentId);
        live.to(`exp:${event.experimentId}`).emit('status', { experimentId: event.experimentId });
      }, 1000).unref();
    }
  });

  return { sendTo };
}
