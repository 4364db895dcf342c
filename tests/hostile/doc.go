// Package hostile holds gunmetal's hostile-server suite: scripted servers
// that misbehave at the byte level (HTTP/1.1), the frame level (HTTP/2,
// with tests/h2server) and the handshake (TLS), and a host that proves,
// for every case, that
//
//   - the error (ERROR, DOWN or EXIT reason) names the problem, or the
//     flood is absorbed and the request still completes;
//   - the host is not handed a flood (a bound on the events it receives);
//   - peak heap and CPU stay bounded while the case runs (runtime.MemStats
//     sampled, getrusage deltas, generous bounds);
//   - a second, healthy connection on the same queue keeps working (a
//     request is made on it after the case);
//   - the client does not reconnect in a storm (accepted connections are
//     counted).
//
// The hostile server misbehaves on the first connection it accepts; later
// ones (reconnects) are served sanely, so that a reconnect is visible as
// one more accepted connection and nothing else. WebSocket cases live in
// the ws suites; reconnect storms and timeouts in the connection tests.
package hostile
