package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The test binary doubles as the server (no separate go build).
func TestMain(m *testing.M) {
	if os.Getenv("GUNMETAL_TESTSERVER_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-cert-dir", dir)
	cmd.Env = append(os.Environ(), "GUNMETAL_TESTSERVER_MAIN=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	var info struct {
		HTTP  int    `json:"http"`
		HTTPS int    `json:"https"`
		Unix  string `json:"unix"`
		CA    string `json:"ca"`
	}
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(line, &info); err != nil {
		t.Fatalf("%v: %q", err, line)
	}
	if info.HTTP == 0 || info.HTTPS == 0 || info.CA != filepath.Join(dir, "ca.pem") {
		t.Fatalf("bad info line %s", line)
	}
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(info.HTTP) + "/bytes/3")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "abc" {
		t.Fatalf("body %q", b)
	}

	// Closing stdin stops it.
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server ignored stdin EOF")
	}
}
