// Package s3test serves S3 for tests: versitygw, a real S3 server over a
// local directory (scripts/test.sh builds it), on loopback.
package s3test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Start starts an S3 server over a temporary directory, stopped when the
// test ends, and returns a store URL with a bucket and a prefix in it. It
// sets the AWS credentials the server takes in the test's environment.
// Without versitygw it returns "" outside CI and fails the test in CI.
func Start(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("KTAPE_VERSITYGW")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "ktape-tools", "versitygw")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("versitygw is required in CI (scripts/test.sh installs it): %v", err)
		}
		t.Logf("versitygw not installed (%v): S3 not tested", err)
		return ""
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "ktape"), 0o755); err != nil { // the bucket
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", "--sidecar", t.TempDir(), root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID=testkey", "ROOT_SECRET_ACCESS_KEY=testsecret")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not start: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "testkey")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testsecret")
	t.Setenv("AWS_REGION", "us-east-1")
	return fmt.Sprintf("s3://ktape/some/prefix?endpoint=http://%s&use_path_style=true", addr)
}
