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
//   - the client does not reconnect in a storm: every hostile server
//     misbehaves on every connection it accepts, the host makes its
//     requests again on every UP (as a host that retries would), and the
//     connections accepted over the case stay within retry+2 (retry 2,
//     retry_timeout 200 ms); a case whose connection goes down ends with an
//     EXIT (retries run out) naming the problem, the others stay up.
//
// WebSocket cases live in the ws suites; the reconnect rule itself and
// timeouts in the core tests (core/storm_test.go, core/progress_test.go).
package hostile
