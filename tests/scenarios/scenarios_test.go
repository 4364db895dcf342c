// The Go runner of the scenario suite: every cases/*.json file is one
// subtest, driven over core directly. The matching rules (data merging,
// ref names, reason classes, any_order blocks) are tests/scenarios/README.md's;
// the C, Python and Erlang runners implement the same rules.
package scenarios_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gunmetal/core"
	"gunmetal/tests/scenarios/scenserver"
)

// waitFor bounds each expect block (generous: loaded machine, -race).
const waitFor = 10 * time.Second

type scenario struct {
	Name          string            `json:"name"`
	Mirrors       string            `json:"mirrors"`
	Description   string            `json:"description"`
	Server        string            `json:"server"`
	Options       json.RawMessage   `json:"options"`
	NotApplicable map[string]string `json:"not_applicable"`
	Script        json.RawMessage   `json:"script"`
	Steps         []step            `json:"steps"`
}

type step struct {
	Call      string          `json:"call"`
	Conn      string          `json:"conn"`
	Queue     string          `json:"queue"`
	Ref       string          `json:"ref"`
	Method    string          `json:"method"`
	Path      string          `json:"path"`
	Headers   [][2]string     `json:"headers"`
	Body      *string         `json:"body"`
	Stream    bool            `json:"stream"`
	TimeoutMS int             `json:"timeout_ms"`
	Flow      int             `json:"flow"`
	ReplyTo   string          `json:"reply_to"`
	Data      string          `json:"data"`
	Fin       bool            `json:"fin"`
	N         int             `json:"n"`
	Frames    []frame         `json:"frames"`
	Options   json.RawMessage `json:"options"`
	Error     string          `json:"error"`
	// Dropped: flush's count of dropped events (checked where the host's
	// flush returns one).
	Dropped *int `json:"dropped"`

	Expect   []expEv `json:"expect"`
	AnyOrder bool    `json:"any_order"`
	// NotApplicable: hosts that skip this step (reported), e.g. a call
	// whose failure the host's API does not report.
	NotApplicable map[string]string `json:"not_applicable"`
}

type frame struct {
	Op   string `json:"op"`
	Data string `json:"data"`
	Code int    `json:"code"`
}

type expEv struct {
	Ev       string            `json:"ev"`
	Conn     string            `json:"conn"`
	Ref      string            `json:"ref"`
	NewRef   string            `json:"new_ref"`
	Fin      *bool             `json:"fin"`
	Status   int               `json:"status"`
	Protocol string            `json:"protocol"`
	Reason   string            `json:"reason"`
	Headers  map[string]string `json:"headers"`
	Size     *int              `json:"size"`
	Body     *string           `json:"body"`
	SHA256   string            `json:"sha256"`
	Method   string            `json:"method"`
	URI      string            `json:"uri"`
	Op       string            `json:"op"`
	Code     *int              `json:"code"`
	Killed   []string          `json:"killed"`
	Name     string            `json:"name"` // a trace event's callback name
}

var evKinds = map[core.EventKind]string{core.EvUp: "up", core.EvDown: "down", core.EvExit: "exit",
	core.EvInform: "inform", core.EvResponse: "response", core.EvData: "data", core.EvTrailers: "trailers",
	core.EvPush: "push", core.EvError: "error", core.EvUpgrade: "upgrade", core.EvWS: "ws",
	core.EvNotify: "notify", core.EvTunnelUp: "tunnel_up", core.EvTrace: "trace", core.EvSSE: "sse"}

var wsOpNames = map[uint8]string{core.WSText: "text", core.WSBinary: "binary", core.WSClose: "close",
	core.WSPing: "ping", core.WSPong: "pong"}

func TestScenarios(t *testing.T) {
	srv, err := scenserver.Start("cases", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	files, _ := filepath.Glob("cases/*.json")
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no scenarios in cases/")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var sc scenario
		if err := json.Unmarshal(b, &sc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		t.Run(sc.Name, func(t *testing.T) {
			if why, ok := sc.NotApplicable["go"]; ok {
				t.Skipf("n/a: %s", why) // reported as skipped, never as passed
			}
			r := &runner{t: t, sc: &sc, srv: srv, queues: map[string]*core.Queue{}, conns: map[string]*core.Conn{}, wsOpts: map[string]core.WSOpts{},
				refs: map[string]uint64{}, names: map[uint64]string{}}
			defer r.cleanup()
			r.run()
			r.cleanup()
			srv.Settle(sc.Name)
			if fails := srv.Failures(sc.Name); len(fails) > 0 {
				t.Errorf("the scripted server saw the client do something else:\n  %s", strings.Join(fails, "\n  "))
			}
			if !t.Failed() {
				t.Logf("scenario %s: passed", sc.Name)
			}
		})
	}
}

type runner struct {
	t      *testing.T
	sc     *scenario
	srv    *scenserver.Server
	queues map[string]*core.Queue
	conns  map[string]*core.Conn
	wsOpts map[string]core.WSOpts // each connection's ws_opts (ws_upgrade with reply_to starts from them)
	refs   map[string]uint64
	names  map[uint64]string
	// authority is the opened connection's host:port, for expectations
	// that contain it ({authority}).
	authority string
}

func (r *runner) cleanup() {
	for _, c := range r.conns {
		c.Close()
	}
	for _, q := range r.queues {
		for {
			evs := make([]*core.Event, 16)
			n, _ := q.Poll(evs, 0)
			if n == 0 {
				break
			}
			core.ReleaseEvents(evs[:n])
		}
	}
}

func (r *runner) queue(name string) *core.Queue {
	if name == "" {
		name = "main"
	}
	q, ok := r.queues[name]
	if !ok {
		var err error
		if q, err = core.NewQueue(); err != nil {
			r.t.Fatal(err)
		}
		r.queues[name] = q
	}
	return q
}

func (r *runner) conn(name string) *core.Conn {
	if name == "" {
		name = "c"
	}
	c, ok := r.conns[name]
	if !ok {
		r.t.Fatalf("no connection %q opened", name)
	}
	return c
}

func (r *runner) ref(name string) uint64 {
	if name == "-" { // the raw protocol's stream (Gun's undefined)
		return 0
	}
	id, ok := r.refs[name]
	if !ok {
		r.t.Fatalf("ref %q is not bound", name)
	}
	return id
}

func (r *runner) bind(name string, id uint64) {
	r.refs[name] = id
	r.names[id] = name
}

// errClass is the error's class, named as the C ABI's status codes.
func errClass(err error) string {
	var oe *core.OptionError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &oe):
		return "eoption"
	case errors.Is(err, core.ErrBadArg):
		return "einval"
	case errors.Is(err, core.ErrClosed):
		return "eclosed"
	case errors.Is(err, core.ErrNoStream):
		return "enostream"
	case errors.Is(err, core.ErrNotUp):
		return "enotup"
	case errors.Is(err, core.ErrBadState):
		return "ebadstate"
	case errors.Is(err, core.ErrUnsupported):
		return "eunsupported"
	case errors.Is(err, core.ErrTimeout):
		return "etimeout"
	}
	return "other: " + err.Error()
}

func (r *runner) port() int {
	switch r.sc.Server {
	case "http":
		return r.srv.TS.HTTPPort()
	case "https":
		return r.srv.TS.TLSPort()
	case "script":
		p, ok := r.srv.Info().Scripts[r.sc.Name]
		if !ok {
			r.t.Fatalf("no script for %s", r.sc.Name)
		}
		return p
	case "closed":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		return p
	}
	r.t.Fatalf("unknown server %q", r.sc.Server)
	return 0
}

func (r *runner) run() {
	for i, st := range r.sc.Steps {
		if why, ok := st.NotApplicable["go"]; ok {
			r.t.Logf("step %d: n/a: %s", i, why)
			continue
		}
		if st.Expect != nil {
			r.expect(i, st)
			if r.t.Failed() {
				return
			}
			continue
		}
		err := r.call(st)
		want := st.Error
		if want == "" {
			want = "ok"
		}
		if got := errClass(err); got != want {
			r.t.Fatalf("step %d (%s): got %s (%v), want %s", i, st.Call, got, err, want)
		}
	}
	// Every event must have been expected: the last block ends with EXIT,
	// so nothing more can come.
	for name, q := range r.queues {
		evs := make([]*core.Event, 16)
		n, _ := q.Poll(evs, 0)
		for _, ev := range evs[:n] {
			r.t.Errorf("queue %s: unexpected event after the last expect: %s", name, r.render(unitOf(ev)))
		}
		core.ReleaseEvents(evs[:n])
	}
}

func (r *runner) call(st step) error {
	switch st.Call {
	case "open":
		opts := st.Options
		if opts == nil {
			opts = r.sc.Options
		}
		if opts == nil {
			opts = json.RawMessage("{}")
		}
		// "{ca}" in the options is the test CA's file (the https server's).
		opts = json.RawMessage(strings.ReplaceAll(string(opts), "{ca}", r.srv.Info().CA))
		port := r.port()
		r.authority = fmt.Sprintf("127.0.0.1:%d", port)
		o, err := core.ParseOptions(opts, port)
		if err != nil {
			return err
		}
		c, err := core.Open("127.0.0.1", port, o, r.queue(st.Queue), nil)
		if err != nil {
			return err
		}
		name := st.Conn
		if name == "" {
			name = "c"
		}
		r.conns[name] = c
		r.wsOpts[name] = o.WS
		return nil
	case "request":
		req := &core.Request{Method: st.Method, Path: st.Path, Stream: st.Stream, Flow: st.Flow,
			Timeout: time.Duration(st.TimeoutMS) * time.Millisecond}
		if req.Method == "" {
			req.Method = "GET"
		}
		for _, h := range st.Headers {
			req.Headers = append(req.Headers, core.Header{Name: h[0], Value: h[1]})
		}
		if st.Body != nil {
			req.Body = []byte(*st.Body)
		}
		if st.ReplyTo != "" {
			req.ReplyTo = r.queue(st.ReplyTo)
		}
		id, err := r.conn(st.Conn).Request(req)
		if err == nil {
			r.bind(st.Ref, id)
		}
		return err
	case "data":
		return r.conn(st.Conn).Data(r.ref(st.Ref), []byte(st.Data), st.Fin)
	case "cancel":
		return r.conn(st.Conn).Cancel(r.ref(st.Ref))
	case "update_flow":
		return r.conn(st.Conn).UpdateFlow(r.ref(st.Ref), st.N)
	case "ws_upgrade":
		var hs []core.Header
		for _, h := range st.Headers {
			hs = append(hs, core.Header{Name: h[0], Value: h[1]})
		}
		var wo *core.WSOpts
		if st.ReplyTo != "" {
			name := st.Conn
			if name == "" {
				name = "c"
			}
			o := r.wsOpts[name]
			o.ReplyTo = r.queue(st.ReplyTo)
			wo = &o
		}
		id, err := r.conn(st.Conn).WSUpgrade(st.Path, hs, wo)
		if err == nil {
			r.bind(st.Ref, id)
		}
		return err
	case "ws_send":
		var fs []core.WSFrame
		for _, f := range st.Frames {
			op := map[string]uint8{"text": core.WSText, "binary": core.WSBinary, "close": core.WSClose,
				"ping": core.WSPing, "pong": core.WSPong}[f.Op]
			fs = append(fs, core.WSFrame{Op: op, Data: []byte(f.Data), Code: f.Code})
		}
		return r.conn(st.Conn).WSSend(r.ref(st.Ref), fs)
	case "ping":
		id, err := r.conn(st.Conn).Ping()
		if err == nil {
			r.bind(st.Ref, id)
		}
		return err
	case "flush":
		var c *core.Conn
		var ref uint64
		if st.Ref != "" {
			ref = r.ref(st.Ref)
		} else {
			c = r.conn(st.Conn)
		}
		n, err := r.queue(st.Queue).Flush(c, ref)
		if err == nil && st.Dropped != nil && n != *st.Dropped {
			r.t.Fatalf("flush dropped %d events, want %d", n, *st.Dropped)
		}
		return err
	case "set_owner":
		return r.conn(st.Conn).SetOwner(r.queue(st.Queue))
	case "shutdown":
		return r.conn(st.Conn).Shutdown()
	case "close":
		r.conn(st.Conn).Close()
		return nil
	}
	r.t.Fatalf("unknown call %q", st.Call)
	return nil
}

// unit is one event as compared: DATA events of a stream that follow each
// other are merged into one unit (their chunking is the network's).
type unit struct {
	kind                     string
	conn                     *core.Conn
	ref, newRef              uint64
	fin                      bool
	status, code             int
	protocol, reason, method string
	uri, op                  string
	headers                  []core.Header
	data                     []byte
	killed                   []uint64
}

func unitOf(ev *core.Event) *unit {
	u := &unit{kind: evKinds[ev.Kind], conn: ev.Conn, ref: ev.Ref, newRef: ev.NewRef, fin: ev.Fin, status: ev.Status,
		protocol: ev.Protocol, reason: ev.Reason, method: ev.Method, uri: ev.URI,
		headers: append([]core.Header(nil), ev.Headers...), data: append([]byte(nil), ev.Data...),
		killed: append([]uint64(nil), ev.Killed...)}
	if ev.Kind == core.EvWS {
		u.op = wsOpNames[ev.WSOp]
		u.code = ev.CloseCode
	}
	return u
}

// group is the units of one expect block (or, in an any_order block, of
// one ref) against what was expected of them.
type group struct {
	exp   []expEv
	units []*unit
}

// closed: the unit at i can take no more DATA.
func (g *group) closed(i int) bool {
	u := g.units[i]
	if u.kind != "data" || u.fin || i < len(g.units)-1 {
		return true
	}
	// Closed early only where the expectation says the stream goes on (a
	// body's last DATA may be empty: chunked encoding's last chunk).
	return i < len(g.exp) && g.exp[i].Size != nil && g.exp[i].Fin != nil && !*g.exp[i].Fin &&
		len(u.data) >= *g.exp[i].Size
}

func (g *group) add(u *unit) {
	if n := len(g.units); n > 0 && u.kind == "data" && g.units[n-1].kind == "data" &&
		g.units[n-1].ref == u.ref && !g.closed(n-1) {
		last := g.units[n-1]
		last.data = append(last.data, u.data...)
		last.fin = u.fin
		return
	}
	g.units = append(g.units, u)
}

func (g *group) complete() bool {
	return len(g.units) > len(g.exp) || len(g.units) == len(g.exp) && (len(g.units) == 0 || g.closed(len(g.units)-1))
}

func (r *runner) expect(i int, st step) {
	q := r.queue(st.Queue)
	groups := map[uint64]*group{}
	var order []uint64
	if st.AnyOrder {
		for _, e := range st.Expect {
			var id uint64
			if e.Ref != "" {
				id = r.ref(e.Ref)
			}
			if groups[id] == nil {
				groups[id] = &group{}
				order = append(order, id)
			}
			groups[id].exp = append(groups[id].exp, e)
		}
	} else {
		groups[0] = &group{exp: st.Expect}
		order = []uint64{0}
	}
	deadline := time.Now().Add(waitFor)
	timedOut := false
	for {
		done := true
		for _, g := range groups {
			done = done && g.complete()
		}
		if done {
			break
		}
		evs := make([]*core.Event, 1)
		n, _ := q.Poll(evs, time.Until(deadline))
		if n == 0 {
			timedOut = true
			break
		}
		u := unitOf(evs[0])
		core.ReleaseEvents(evs[:1])
		key := uint64(0)
		if st.AnyOrder {
			key = u.ref
		}
		g := groups[key]
		if g == nil { // an event of a ref this block does not expect
			g = &group{}
			groups[key] = g
			order = append(order, key)
		}
		g.add(u)
	}
	var report []string
	ok := !timedOut
	for _, key := range order {
		g := groups[key]
		lines, gok := r.diff(g)
		ok = ok && gok
		if st.AnyOrder {
			report = append(report, fmt.Sprintf("  ref %s:", r.refName(key)))
		}
		report = append(report, lines...)
	}
	if !ok {
		why := "mismatch"
		if timedOut {
			why = fmt.Sprintf("incomplete after %v", waitFor)
		}
		if fails := r.srv.Failures(r.sc.Name); len(fails) > 0 {
			report = append(report, "  the scripted server: "+strings.Join(fails, "; "))
		}
		r.t.Fatalf("step %d: expect block: %s (! marks a difference)\n%s", i, why, strings.Join(report, "\n"))
	}
}

func (r *runner) refName(id uint64) string {
	if id == 0 {
		return "-"
	}
	if n, ok := r.names[id]; ok {
		return n
	}
	return fmt.Sprintf("#%d", id)
}

// diff matches units against the expectation, position by position, and
// renders both sides.
func (r *runner) diff(g *group) ([]string, bool) {
	ok := true
	var lines []string
	for i := 0; i < max(len(g.exp), len(g.units)); i++ {
		var e, a string
		match := false
		if i < len(g.exp) {
			e = renderExp(g.exp[i])
		} else {
			e = "(nothing)"
		}
		if i < len(g.units) {
			if i < len(g.exp) {
				match = r.match(g.exp[i], g.units[i])
			}
			a = r.render(g.units[i])
		} else {
			a = "(nothing)"
		}
		mark := "  "
		if !match {
			mark = "! "
			ok = false
		}
		lines = append(lines, fmt.Sprintf("  %sexpected %-50s got %s", mark, e, a))
	}
	return lines, ok
}

func (r *runner) matchRef(name string, id uint64) bool {
	if name == "" {
		return true
	}
	if name == "-" {
		return id == 0
	}
	if bound, ok := r.refs[name]; ok {
		return bound == id
	}
	if _, taken := r.names[id]; taken || id == 0 {
		return false
	}
	r.bind(name, id) // a ref the server made (push)
	return true
}

func (r *runner) match(e expEv, u *unit) bool {
	if e.Name != "" && (u.kind != "trace" || e.Name != u.reason) {
		return false
	}
	if e.Ev != u.kind || !r.matchRef(e.Ref, u.ref) || !r.matchRef(e.NewRef, u.newRef) {
		return false
	}
	if e.Conn != "" && r.conns[e.Conn] != u.conn {
		return false
	}
	if e.Fin != nil && *e.Fin != u.fin || e.Status != 0 && e.Status != u.status ||
		e.Protocol != "" && e.Protocol != u.protocol || !strings.HasPrefix(u.reason, e.Reason) ||
		e.Method != "" && e.Method != u.method || e.URI != "" && strings.ReplaceAll(e.URI, "{authority}", r.authority) != u.uri ||
		e.Op != "" && e.Op != u.op || e.Code != nil && *e.Code != u.code {
		return false
	}
	for k, v := range e.Headers {
		found := false
		for _, h := range u.headers {
			if h.Name == k && h.Value == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	if e.Size != nil && *e.Size != len(u.data) || e.Body != nil && *e.Body != string(u.data) {
		return false
	}
	if e.SHA256 != "" {
		sum := sha256.Sum256(u.data)
		if hex.EncodeToString(sum[:]) != e.SHA256 {
			return false
		}
	}
	if e.Killed != nil {
		if len(e.Killed) != len(u.killed) {
			return false
		}
		for _, name := range e.Killed {
			found := false
			for _, id := range u.killed {
				found = found || r.refs[name] == id
			}
			if !found {
				return false
			}
		}
	}
	return true
}

func renderExp(e expEv) string {
	s := []string{e.Ev}
	if e.Name != "" {
		s = append(s, e.Name)
	}
	if e.Ref != "" {
		s = append(s, e.Ref)
	}
	if e.NewRef != "" {
		s = append(s, "new="+e.NewRef)
	}
	if e.Fin != nil {
		s = append(s, map[bool]string{true: "fin", false: "nofin"}[*e.Fin])
	}
	if e.Status != 0 {
		s = append(s, fmt.Sprint(e.Status))
	}
	if e.Protocol != "" {
		s = append(s, e.Protocol)
	}
	if e.Op != "" {
		s = append(s, e.Op)
	}
	if e.Code != nil {
		s = append(s, fmt.Sprintf("code=%d", *e.Code))
	}
	if e.Reason != "" {
		s = append(s, fmt.Sprintf("reason=%q...", e.Reason))
	}
	if e.Method != "" || e.URI != "" {
		s = append(s, e.Method, e.URI)
	}
	if e.Killed != nil {
		s = append(s, "killed=["+strings.Join(e.Killed, ",")+"]")
	}
	keys := make([]string, 0, len(e.Headers))
	for k := range e.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s = append(s, k+"="+e.Headers[k])
	}
	if e.Size != nil {
		s = append(s, fmt.Sprintf("size=%d", *e.Size))
	}
	if e.Body != nil {
		s = append(s, fmt.Sprintf("%q", *e.Body))
	}
	if e.SHA256 != "" {
		s = append(s, "sha256="+e.SHA256[:min(12, len(e.SHA256))])
	}
	return strings.Join(s, " ")
}

func (r *runner) render(u *unit) string {
	s := []string{u.kind}
	if u.ref != 0 {
		s = append(s, r.refName(u.ref))
	}
	if u.newRef != 0 {
		s = append(s, "new="+r.refName(u.newRef))
	}
	switch u.kind {
	case "response", "data", "inform", "trailers", "sse":
		s = append(s, map[bool]string{true: "fin", false: "nofin"}[u.fin])
	}
	if u.status != 0 {
		s = append(s, fmt.Sprint(u.status))
	}
	if u.protocol != "" {
		s = append(s, u.protocol)
	}
	if u.op != "" {
		s = append(s, u.op)
	}
	if u.kind == "ws" && u.op == "close" {
		s = append(s, fmt.Sprintf("code=%d", u.code))
	}
	if u.reason != "" {
		s = append(s, fmt.Sprintf("reason=%q", u.reason))
	}
	if u.method != "" || u.uri != "" {
		s = append(s, u.method, u.uri)
	}
	if u.kind == "down" {
		var ks []string
		for _, k := range u.killed {
			ks = append(ks, r.refName(k))
		}
		s = append(s, "killed=["+strings.Join(ks, ",")+"]")
	}
	for _, h := range u.headers {
		if !strings.HasPrefix(h.Name, "date") {
			s = append(s, h.Name+"="+h.Value)
		}
	}
	if u.kind == "data" || u.kind == "ws" || u.kind == "sse" {
		sum := sha256.Sum256(u.data)
		body := string(u.data)
		if len(body) > 32 {
			body = body[:32] + "..."
		}
		s = append(s, fmt.Sprintf("size=%d %q sha256=%s", len(u.data), body, hex.EncodeToString(sum[:])[:12]))
	}
	return strings.Join(s, " ")
}

// The README lists every scenario: adding a file without its row fails.
func TestReadmeListsEveryScenario(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("cases/*.json")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if !strings.Contains(string(b), "| `"+name+"` |") {
			t.Errorf("README.md has no row for scenario %s", name)
		}
	}
}
