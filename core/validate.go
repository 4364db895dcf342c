package core

import (
	"fmt"
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

// ValidateHeader checks one header field: the name a token, the value
// valid UTF-8 without CR, LF or NUL.
func ValidateHeader(h Header) error {
	if !isToken(h.Name) {
		return fmt.Errorf("%w: header name %q is not a valid token", ErrBadArg, h.Name)
	}
	if !utf8.ValidString(h.Value) {
		return fmt.Errorf("%w: value of header %q is not valid UTF-8", ErrBadArg, h.Name)
	}
	for i := 0; i < len(h.Value); i++ {
		switch h.Value[i] {
		case '\r', '\n', 0:
			return fmt.Errorf("%w: value of header %q contains CR, LF or NUL", ErrBadArg, h.Name)
		}
	}
	return nil
}

// ValidatePath checks a request target: non-empty, valid UTF-8, no space
// or control character.
func ValidatePath(p string) error {
	if p == "" {
		return fmt.Errorf("%w: empty path", ErrBadArg)
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

func validateRequest(r *Request) error {
	if r == nil {
		return fmt.Errorf("%w: no request", ErrBadArg)
	}
	if !isToken(r.Method) {
		return fmt.Errorf("%w: method %q is not a valid token", ErrBadArg, r.Method)
	}
	if err := ValidatePath(r.Path); err != nil {
		return err
	}
	for _, h := range r.Headers {
		if err := ValidateHeader(h); err != nil {
			return err
		}
	}
	if r.Stream && len(r.Body) > 0 {
		return fmt.Errorf("%w: a streamed request takes its body through data calls", ErrBadArg)
	}
	if r.Timeout < 0 || r.Flow < 0 {
		return fmt.Errorf("%w: negative timeout or flow", ErrBadArg)
	}
	return nil
}
