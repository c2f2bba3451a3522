// WebSocket echo server on Node's `ws` package, for trio_upgrade's interop tests.
//
// Usage: node echo_server.js [--deflate]
// Binds 127.0.0.1 on a free port and prints that port on stdout.
//   /close?code=C&reason=R -> close at once with C and R
//   /greet                 -> send text "hello" right after the handshake,
//                             in the same write as the 101 (socket cork)
//   anything else          -> echo every message, keeping text/binary
'use strict';

const { WebSocketServer } = require('ws');

const deflate = process.argv.includes('--deflate');
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 64 * 1024 * 1024,
  // ws turns compression off by default; the flag makes it negotiable.
  perMessageDeflate: deflate,
});

function target(req) {
  return new URL(req.url, 'http://127.0.0.1');
}

// 'headers' fires just before the 101 is written: cork the socket so the
// 101 and the greeting leave in one write.
wss.on('headers', (_headers, req) => {
  if (target(req).pathname === '/greet') req.socket.cork();
});

wss.on('connection', (ws, req) => {
  const url = target(req);
  if (url.pathname === '/close') {
    const code = Number(url.searchParams.get('code') || 1000);
    ws.close(code, url.searchParams.get('reason') || '');
    return;
  }
  if (url.pathname === '/greet') {
    ws.send('hello');
    process.nextTick(() => req.socket.uncork());
  }
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});

wss.on('listening', () => {
  process.stdout.write(`${wss.address().port}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    for (const client of wss.clients) client.terminate();
    wss.close(() => process.exit(0));
  });
}
