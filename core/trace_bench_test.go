package core

import (
	"testing"
)

// BenchmarkTraceW1: many GETs on one HTTP/1.1 connection to the test
// server, 64 in flight, with the trace option off, on (every name), and on
// for one name only (response_end: the others' hooks are passed by their
// one branch). A figure, not a test: compare ns/op and allocs/op.
func BenchmarkTraceW1(b *testing.B) {
	for _, bc := range []struct{ name, opts string }{
		{"off", `{}`},
		{"on", `{"trace":true}`},
		{"one", `{"trace":["response_end"]}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := newQueue(b)
			c := openTo(b, q, srv.HTTPPort(), bc.opts)
			awaitUp(b, c)
			// The trace events of the connect, before the loop.
			var out [256]*Event
			for q.Len() > 0 {
				q.Poll(out[:], 0)
			}
			const inFlight = 64
			b.ReportAllocs()
			b.ResetTimer()
			sent, ended := 0, 0
			for ended < b.N {
				for sent < b.N && sent-ended < inFlight {
					if _, err := c.Request(&Request{Method: "GET", Path: "/bytes/100"}); err != nil {
						b.Fatal(err)
					}
					sent++
				}
				n, err := q.Poll(out[:], waitFor)
				if err != nil || n == 0 {
					b.Fatalf("poll: %d %v", n, err)
				}
				for _, ev := range out[:n] {
					if ev.Kind == EvError {
						b.Fatalf("error: %s", ev.Reason)
					}
					if (ev.Kind == EvData || ev.Kind == EvResponse) && ev.Fin {
						ended++
					}
				}
				clear(out[:n])
			}
		})
	}
}
