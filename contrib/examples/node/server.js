// A Node HTTP server on the socket sockd passes as fd 3 (LISTEN_FDS=1).
"use strict";
const http = require("http");

if (process.env.LISTEN_FDS !== "1") {
  console.error("expected one socket from sockd (LISTEN_FDS=1)");
  process.exit(1);
}
const server = http.createServer((req, res) => {
  res.end(`hello from node ${process.pid}\n`);
});
server.listen({ fd: 3 }, () => console.log(`node ${process.pid} serving fd 3`));
process.on("SIGTERM", () => {
  // Stop taking connections, finish the open ones, exit.
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
