package core

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Validation happens before anything is written: a request that fails it
// never reaches the wire.

func isTokenChar(b byte) bool {
	return b < 0x80 && tokenTable[b]
}

var tokenTable = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-32] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return
}()

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// Limits on what a caller hands over in one call. They bound the memory and
// work a single request can cost (a 100 MB header value is refused, not
// copied), and the C ABI documents them as GM_MAX_* (include/gunmetal.h).
const (
	// MaxRequestHeaders is the number of header fields of one request.
	MaxRequestHeaders = 1 << 16
	// MaxHeaderBytes bounds the sum of the names' and values' lengths of
	// one request's header fields.
	MaxHeaderBytes = 1 << 20
	// MaxTargetLen bounds the request target (path and query) and the
	// method.
	MaxTargetLen = 1 << 16
)

// ValidateHeader checks one header field: the name a token (RFC 9110
// 5.1), the value valid UTF-8 without a control character other than HTAB
// (RFC 9110 5.5: field-content is VCHAR, SP, HTAB and obs-text; CR, LF,
// NUL, the other C0 controls and DEL are refused).
func ValidateHeader(h Header) error {
	if !isToken(h.Name) {
		return fmt.Errorf("%w: header name %q is not a valid token", ErrBadArg, h.Name)
	}
	if !utf8.ValidString(h.Value) {
		return fmt.Errorf("%w: value of header %q is not valid UTF-8", ErrBadArg, h.Name)
	}
	for i := 0; i < len(h.Value); i++ {
		switch b := h.Value[i]; {
		case b == '\r', b == '\n', b == 0:
			return fmt.Errorf("%w: value of header %q contains CR, LF or NUL", ErrBadArg, h.Name)
		case (b < 0x20 && b != '\t') || b == 0x7f:
			return fmt.Errorf("%w: value of header %q contains the control character 0x%02x at %d (RFC 9110 5.5)", ErrBadArg, h.Name, b, i)
		}
	}
	return nil
}

// ValidatePath checks a request target's characters: non-empty, at most
// MaxTargetLen bytes, valid UTF-8, no space or control character. Its form
// is checked by validateTarget.
func ValidatePath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty path", ErrBadArg)
	}
	if len(p) > MaxTargetLen {
		return fmt.Errorf("%w: path is %d bytes, more than the limit of %d", ErrBadArg, len(p), MaxTargetLen)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w: path is not valid UTF-8", ErrBadArg)
	}
	for i := 0; i < len(p); i++ {
		if b := p[i]; b <= ' ' || b == 0x7f {
			return fmt.Errorf("%w: path contains a space or control character (byte 0x%02x at %d)", ErrBadArg, b, i)
		}
	}
	return nil
}

// absoluteForm: an absolute-form target (RFC 9112 3.2.2), "http://" or
// "https://" and a non-empty authority, what a forward proxy takes.
func absoluteForm(p string) bool {
	for _, scheme := range []string{"http://", "https://"} {
		if len(p) > len(scheme) && strings.EqualFold(p[:len(scheme)], scheme) {
			rest := p[len(scheme):]
			return rest[0] != '/' && rest[0] != '?' && rest[0] != '#'
		}
	}
	return false
}

// validateTarget checks the target's form (RFC 9110 7.1, RFC 9112 3.2):
// origin-form ("/..."), asterisk-form ("*", OPTIONS only) or absolute-form
// for a forward proxy (HTTP/1.1 only: checkProtoRequest refuses it where
// HTTP/2 may be spoken, as :path cannot carry it, RFC 9113 8.3.1).
// Authority-form is CONNECT's, which is not a request here. Gun sends any
// path as given; a target that is none of these is refused, as the server
// would read it as something else.
func validateTarget(method, p string) error {
	switch {
	case p[0] == '/':
		return nil
	case p == "*":
		if method == "OPTIONS" {
			return nil
		}
		return fmt.Errorf("%w: path \"*\" is only for OPTIONS, not %s (RFC 9112 3.2.4)", ErrBadArg, method)
	case absoluteForm(p):
		return nil
	}
	return fmt.Errorf("%w: path %q must start with \"/\" (or be \"*\" for OPTIONS, or an absolute http:// or https:// URI for a proxy)", ErrBadArg, truncateForMsg(p, 64))
}

func truncateForMsg(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// validateHeaderList checks every field and the list's size limits.
func validateHeaderList(hs []Header) error {
	if len(hs) > MaxRequestHeaders {
		return fmt.Errorf("%w: %d header fields, more than the limit of %d", ErrBadArg, len(hs), MaxRequestHeaders)
	}
	total := 0
	for _, h := range hs {
		total += len(h.Name) + len(h.Value)
		if total > MaxHeaderBytes {
			return fmt.Errorf("%w: header fields take more than the limit of %d bytes (names and values)", ErrBadArg, MaxHeaderBytes)
		}
	}
	for _, h := range hs {
		if err := ValidateHeader(h); err != nil {
			return err
		}
	}
	return nil
}

func validateRequest(r *Request) error {
	if r == nil {
		return fmt.Errorf("%w: no request", ErrBadArg)
	}
	if len(r.Method) > MaxTargetLen {
		return fmt.Errorf("%w: method is %d bytes, more than the limit of %d", ErrBadArg, len(r.Method), MaxTargetLen)
	}
	if !isToken(r.Method) {
		return fmt.Errorf("%w: method %q is not a valid token", ErrBadArg, r.Method)
	}
	if err := ValidatePath(r.Path); err != nil {
		return err
	}
	if r.connect == nil { // Connect's authority-form target is its own
		if err := validateTarget(r.Method, r.Path); err != nil {
			return err
		}
	}
	if err := validateHeaderList(r.Headers); err != nil {
		return err
	}
	if r.Stream && len(r.Body) > 0 {
		return fmt.Errorf("%w: a streamed request takes its body through data calls", ErrBadArg)
	}
	if r.Timeout < 0 || r.Flow < 0 {
		return fmt.Errorf("%w: negative timeout or flow", ErrBadArg)
	}
	return nil
}
