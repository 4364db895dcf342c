package scenserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Flatten turns the scenario files of dir into a line format a small C
// program reads without a JSON parser (tests/c/scenarios.c): one record per
// line, fields separated by tabs, "key=value" with the value
// percent-encoded (every byte below 0x21, above 0x7e, and '%' and '=').
//
//	S name                      a scenario starts
//	server kind                 http | https | script | closed
//	na host reason              not applicable in that host
//	O options-json              the options of open
//	C call=... key=value...     a call; headers as hn=/hv= pairs, frames as fo=/fd=/fc= triples
//	E queue=Q any=0|1 n=N       an expect block of the N events that follow
//	e ev=... key=value...       one expected event; headers hn=/hv= pairs; killed k= (one per name) with killed=1
//
// A step's not_applicable becomes na_HOST=reason fields on its C or E line.
//
//	X                           the scenario ends
//
// A field absent from the JSON is absent from the line.
func Flatten(dir string) ([]byte, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out bytes.Buffer
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var sc map[string]json.RawMessage
		if err := json.Unmarshal(b, &sc); err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		var name, server string
		json.Unmarshal(sc["name"], &name)
		json.Unmarshal(sc["server"], &server)
		fmt.Fprintf(&out, "S\t%s\nserver\t%s\n", enc(name), enc(server))
		var na map[string]string
		json.Unmarshal(sc["not_applicable"], &na)
		hosts := make([]string, 0, len(na))
		for h := range na {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		for _, h := range hosts {
			fmt.Fprintf(&out, "na\t%s\t%s\n", enc(h), enc(na[h]))
		}
		opts := sc["options"]
		if opts == nil {
			opts = json.RawMessage("{}")
		}
		var cb bytes.Buffer
		json.Compact(&cb, opts)
		fmt.Fprintf(&out, "O\t%s\n", enc(cb.String()))
		var steps []map[string]json.RawMessage
		if err := json.Unmarshal(sc["steps"], &steps); err != nil {
			return nil, fmt.Errorf("%s: steps: %v", f, err)
		}
		for _, st := range steps {
			if ex, ok := st["expect"]; ok {
				var evs []map[string]json.RawMessage
				if err := json.Unmarshal(ex, &evs); err != nil {
					return nil, fmt.Errorf("%s: expect: %v", f, err)
				}
				var q string
				var anyOrder bool
				json.Unmarshal(st["queue"], &q)
				json.Unmarshal(st["any_order"], &anyOrder)
				fmt.Fprintf(&out, "E\tqueue=%s\tany=%d\tn=%d\n", enc(q), b2i(anyOrder), len(evs))
				for _, ev := range evs {
					out.WriteString("e" + fields(ev) + "\n")
				}
				continue
			}
			out.WriteString("C" + fields(st) + "\n")
		}
		out.WriteString("X\n")
	}
	return out.Bytes(), nil
}

// fields renders one JSON object's members as tab-separated key=value.
func fields(m map[string]json.RawMessage) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// "call" and "ev" first: a reader dispatches on them.
	sort.SliceStable(keys, func(i, j int) bool { return keys[i] == "call" || keys[i] == "ev" })
	var s strings.Builder
	for _, k := range keys {
		raw := m[k]
		switch k {
		case "headers":
			var hs [][2]string
			if json.Unmarshal(raw, &hs) == nil {
				for _, h := range hs {
					s.WriteString("\thn=" + enc(h[0]) + "\thv=" + enc(h[1]))
				}
				continue
			}
			var hm map[string]string
			json.Unmarshal(raw, &hm)
			names := make([]string, 0, len(hm))
			for n := range hm {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				s.WriteString("\thn=" + enc(n) + "\thv=" + enc(hm[n]))
			}
		case "frames":
			var fs []struct {
				Op   string `json:"op"`
				Data string `json:"data"`
				Code int    `json:"code"`
			}
			json.Unmarshal(raw, &fs)
			for _, f := range fs {
				s.WriteString("\tfo=" + enc(f.Op) + "\tfd=" + enc(f.Data) + "\tfc=" + strconv.Itoa(f.Code))
			}
		case "killed":
			var ks []string
			json.Unmarshal(raw, &ks)
			s.WriteString("\tkilled=1")
			for _, k := range ks {
				s.WriteString("\tk=" + enc(k))
			}
		case "not_applicable":
			var na map[string]string
			json.Unmarshal(raw, &na)
			hosts := make([]string, 0, len(na))
			for h := range na {
				hosts = append(hosts, h)
			}
			sort.Strings(hosts)
			for _, h := range hosts {
				s.WriteString("\tna_" + enc(h) + "=" + enc(na[h]))
			}
		case "options":
			var cb bytes.Buffer
			json.Compact(&cb, raw)
			s.WriteString("\toptions=" + enc(cb.String()))
		default:
			var v any
			json.Unmarshal(raw, &v)
			switch v := v.(type) {
			case string:
				s.WriteString("\t" + k + "=" + enc(v))
			case bool:
				s.WriteString("\t" + k + "=" + strconv.Itoa(b2i(v)))
			case float64:
				s.WriteString("\t" + k + "=" + strconv.FormatInt(int64(v), 10))
			}
		}
	}
	return s.String()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func enc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '%' || c == '=' {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
