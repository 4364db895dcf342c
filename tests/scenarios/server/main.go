// Command server serves the scenario suite to the C, Python and Erlang
// runners: the test server and every scripted scenario of -dir. It prints
// one JSON line,
//
//	{"http":PORT,"https":PORT,"ca":PATH,"scripts":{"NAME":PORT,...}}
//
// and runs until SIGINT/SIGTERM or until its stdin is closed (a parent that
// dies takes it along).
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

	"gunmetal/tests/scenarios/scenserver"
)

func main() {
	dir := flag.String("dir", "tests/scenarios/cases", "the scenario files")
	verbose := flag.Bool("v", false, "log script failures and server errors to stderr")
	flatten := flag.Bool("flatten", false, "print the scenarios in the C runner's line format and exit")
	flag.Parse()
	if *flatten {
		b, err := scenserver.Flatten(*dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "scenserver:", err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
		return
	}
	var logw io.Writer
	if *verbose {
		logw = os.Stderr
	}
	s, err := scenserver.Start(*dir, logw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scenserver:", err)
		os.Exit(1)
	}
	defer s.Close()
	line, _ := json.Marshal(s.Info())
	os.Stdout.Write(append(line, '\n'))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0 {
		go func() {
			io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	<-ctx.Done()
}
