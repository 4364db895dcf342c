package core

import (
	"testing"
)

// h1FuzzMethods picks the request method of each of the first responses.
var h1FuzzMethods = [4]string{"GET", "HEAD", "CONNECT", "POST"}

// FuzzH1Parser checks that the parser never panics or loops, never consumes
// more than it is given, and produces the same parts (data merged) whatever
// the input's split into reads.
func FuzzH1Parser(f *testing.F) {
	for i, c := range h1Cases {
		sel := uint16(0)
		for j, m := range c.methods {
			if j == 4 {
				break
			}
			for k, fm := range h1FuzzMethods {
				if m == fm {
					sel |= uint16(k) << (2 * j)
				}
			}
		}
		f.Add([]byte(c.in), sel)
		f.Add([]byte(c.in), sel|0x100|uint16(i)<<10) // small limits, other splits
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+
		"10;"+string(make([]byte, 20))+"\r\n0\r\nA: b\r\nC: d\r\nE: f\r\nG: h\r\nI: j\r\n\r\n"), uint16(0x100))

	f.Fuzz(func(t *testing.T, in []byte, sel uint16) {
		if len(in) > 1<<14 {
			return
		}
		methods := make([]string, 4)
		for i := range methods {
			methods[i] = h1FuzzMethods[(sel>>(2*i))&3]
		}
		lim := h1TestLimits
		if sel&0x100 != 0 {
			lim = h1Limits{MaxHeaderBlock: 64, MaxTrailerBlock: 24, MaxChunkLine: 12}
		}
		whole := h1Drive(t, lim, methods, [][]byte{in})
		want := whole.String()
		check := func(how string, chunks [][]byte) {
			t.Helper()
			if got := h1Drive(t, lim, methods, chunks).String(); got != want {
				t.Fatalf("%s:\n got: %s\nwant: %s", how, got, want)
			}
		}
		// One byte at a time.
		bytewise := make([][]byte, len(in))
		for i := range in {
			bytewise[i] = in[i : i+1]
		}
		check("byte at a time", bytewise)
		// Two pieces, split point chosen by sel.
		if len(in) > 0 {
			k := int(sel>>9) % (len(in) + 1)
			check("two pieces", [][]byte{in[:k], in[k:]})
		}
		// Pieces of varying sizes 1..n.
		step := int(sel>>10) + 1
		var pieces [][]byte
		for i, sz := 0, 1; i < len(in); sz = sz%step + 1 {
			j := min(i+sz, len(in))
			pieces = append(pieces, in[i:j])
			i = j
		}
		check("varying pieces", pieces)
	})
}
