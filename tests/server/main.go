// Command server runs gunmetal's test server standalone (for the C/binding
// test suites and `make demo`). It prints one JSON line with its addresses:
//
//	{"http":PORT,"https":PORT,"unix":PATH,"ca":CAPATH}
//
// and runs until SIGINT/SIGTERM or until stdin is closed (so a parent that
// dies takes it along). Stdin is only watched when it is a pipe, socket or
// terminal: /dev/null or a file would end the server at once.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"gunmetal/tests/testserver"
)

func main() {
	unix := flag.String("unix", "", "also serve on this Unix socket path")
	certDir := flag.String("cert-dir", "", "write ca.pem, cert.pem, key.pem here (temp dir if empty)")
	port := flag.Int("port", 0, "cleartext HTTP port (0: pick a free one)")
	tlsPort := flag.Int("tls-port", 0, "TLS port (0: pick a free one)")
	verbose := flag.Bool("v", false, "log server errors to stderr")
	flag.Parse()

	cfg := testserver.Config{Unix: *unix, CertDir: *certDir, HTTPPort: *port, TLSPort: *tlsPort}
	if *verbose {
		cfg.Log = os.Stderr
	}
	srv, err := testserver.Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
	defer srv.Close()

	line, _ := json.Marshal(struct {
		HTTP  int    `json:"http"`
		HTTPS int    `json:"https"`
		Unix  string `json:"unix"`
		CA    string `json:"ca"`
	}{srv.HTTPPort(), srv.TLSPort(), srv.UnixPath(), srv.CAFile()})
	os.Stdout.Write(append(line, '\n'))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if watchableStdin() {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	<-ctx.Done()
}

func watchableStdin() bool {
	fi, err := os.Stdin.Stat()
	if err != nil {
		return false
	}
	m := fi.Mode()
	if m&(os.ModeNamedPipe|os.ModeSocket) != 0 {
		return true
	}
	if m&os.ModeCharDevice != 0 {
		null, err := os.Stat(os.DevNull)
		return err != nil || !os.SameFile(fi, null)
	}
	return false
}
