// Package nginx runs Debian's nginx on 127.0.0.1 for interop tests: a server
// nobody in this project wrote. It drives tests/nginx/nginx.sh, which keeps
// everything (config, pid file, logs, temp files, certificate) in one
// directory; see that script for what is served:
//
//	/bytes/0 /bytes/100 /bytes/100000 /bytes/10485760  static files, byte i = 'a'+i%26
//	/chunked.shtml  chunked body     /status204  204     /redirect  301 to /bytes/100
//	anything else   404
//
// HTTPPort is HTTP/1.1 cleartext; TLSPort is TLS with ALPN h2 and http/1.1,
// with a certificate for localhost and 127.0.0.1 signed by CAFile.
package nginx

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Nginx is a running nginx.
type Nginx struct {
	HTTPPort int    // HTTP/1.1 over TCP
	TLSPort  int    // HTTPS: h2 and http/1.1 by ALPN
	CertFile string // the server's certificate
	CAFile   string // the CA that signed it: what clients trust
	Dir      string // everything nginx uses, logs in Dir/logs
	PID      int    // the master process
}

// Script is the path of nginx.sh next to this file.
func Script() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "tests/nginx/nginx.sh"
	}
	return filepath.Join(filepath.Dir(file), "nginx.sh")
}

// Installed reports whether an nginx binary can be found.
func Installed() bool {
	if _, err := exec.LookPath("nginx"); err == nil {
		return true
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// Start runs nginx in a fresh temporary directory and stops it when the test
// ends. A machine without nginx fails the test (it does not skip it): the
// project's tests need it, and `make deps` installs it.
func Start(t testing.TB) *Nginx {
	t.Helper()
	if !Installed() {
		t.Fatal("nginx is not installed: run `make deps` (it installs Debian's nginx package when run as root)")
	}
	dir := t.TempDir()
	n, err := start(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after TempDir's cleanup, so it runs before the directory goes.
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func start(dir string) (*Nginx, error) {
	cmd := exec.Command("bash", Script(), "start", dir)
	var stderr []byte
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	if err != nil {
		return nil, fmt.Errorf("nginx.sh start: %v: %s", err, stderr)
	}
	var info struct {
		HTTP  int    `json:"http"`
		HTTPS int    `json:"https"`
		Cert  string `json:"cert"`
		CA    string `json:"ca"`
		PID   int    `json:"pid"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("nginx.sh start printed %q: %v", out, err)
	}
	return &Nginx{HTTPPort: info.HTTP, TLSPort: info.HTTPS, CertFile: info.Cert, CAFile: info.CA, Dir: dir, PID: info.PID}, nil
}

// Stop stops nginx; Start's cleanup calls it. Stopping twice is harmless.
func (n *Nginx) Stop() error {
	out, err := exec.Command("bash", Script(), "stop", n.Dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx.sh stop: %v: %s", err, out)
	}
	return nil
}

// URL returns "http://127.0.0.1:PORT" + path.
func (n *Nginx) URL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", n.HTTPPort, path)
}

// TLSURL returns "https://localhost:PORT" + path.
func (n *Nginx) TLSURL(path string) string {
	return fmt.Sprintf("https://localhost:%d%s", n.TLSPort, path)
}

// ErrorLog returns the contents of nginx's error log, for failure messages.
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "logs", "error.log"))
	return string(b)
}
