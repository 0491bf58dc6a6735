/** The session's Transport over socket.io, reconnecting with backoff. */
import { io, type Socket } from 'socket.io-client';
import { MESSAGE_EVENT, type ClientMessage } from '../../shared/protocol.ts';
import type { Transport } from '../../shared/worker/session.ts';

export interface SocketTransport extends Transport {
  readonly socket: Socket;
}

export function socketTransport(base: string): SocketTransport {
  const socket = io(base, {
    transports: ['websocket'],
    reconnection: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 10_000,
    randomizationFactor: 0.5,
  });
  return {
    socket,
    send: (message: ClientMessage) => void socket.emit(MESSAGE_EVENT, message),
    onMessage: (handler) => void socket.on(MESSAGE_EVENT, handler),
    onConnection: (handler) => {
      socket.on('connect', () => handler(true));
      socket.on('disconnect', () => handler(false));
    },
    close: () => void socket.close(),
  };
}
