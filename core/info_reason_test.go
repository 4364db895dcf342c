package core

import (
	"testing"
	"time"

	"gunmetal/tests/testserver"
)

// TestInfoReasonAfterExit: once closed, Info carries the EXIT's reason while
// the EXIT event is still queued (the Python sync API reads it there to say
// why await_up failed without taking the event from the owner).
func TestInfoReasonAfterExit(t *testing.T) {
	q := newQueue(t)
	c := openTo(t, q, testserver.FreePort(), `{"retry":0}`)
	if _, err := c.AwaitUp(5 * time.Second); err == nil {
		t.Fatal("await_up on a refused port succeeded")
	}
	if in := c.Info(); in.State != "closed" || in.Reason != "econnrefused" {
		t.Fatalf("info %+v, want closed with reason econnrefused", in)
	}
	if q.Len() != 1 {
		t.Fatalf("queue holds %d events, want the EXIT still there", q.Len())
	}
}
