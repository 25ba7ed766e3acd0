package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ktape/ktape/internal/kfaketest"
	"github.com/ktape/ktape/internal/s3test"
	"github.com/twmb/franz-go/pkg/kgo"
)

// keygen runs ktape keygen into dir/name and returns the file and the
// public key it printed.
func keygen(t *testing.T, dir, name string) (file, recipient string) {
	t.Helper()
	file = filepath.Join(dir, name)
	code, out, errOut := runKtape(t, "keygen", "--output", file)
	if code != 0 || !strings.HasPrefix(out, "age1") {
		t.Fatalf("keygen: %d %q %s", code, out, errOut)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keygen wrote %v, %v: want mode 0600", fi.Mode(), err)
	}
	if code, _, errOut := runKtape(t, "keygen", "--output", file); code == 0 || !strings.Contains(errOut, "exists") {
		t.Fatalf("keygen over an existing key: %d %s", code, errOut)
	}
	return file, strings.TrimSpace(out)
}

// An encrypted repository end to end, on a local disk and on S3: the
// backup host holds only its writer key, with which it backs up twice
// (the second continuing from the first's manifest), lists and verifies;
// it can neither deep-verify nor restore. The owner's key restores every
// record exactly (read back with franz-go), a time window included, and
// no record's bytes are on storage in the clear.
func TestEncryptedBackupRestore(t *testing.T) {
	keys := t.TempDir()
	ownerKey, owner := keygen(t, keys, "owner.key")
	writerKey, _ := keygen(t, keys, "writer.key")
	recipients := filepath.Join(keys, "recipients.txt")
	if err := os.WriteFile(recipients, []byte("# the owner\n"+owner+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := []byte("TOP-SECRET-PAYLOAD-")
	for _, where := range []string{"local", "s3"} {
		t.Run(where, func(t *testing.T) {
			dir := t.TempDir()
			url := dir
			if where == "s3" {
				if url = s3test.Start(t); url == "" {
					t.Skip("versitygw not installed")
				}
			}
			src := kfaketest.Start(t, kfaketest.Topics(3, "orders"))
			produce := func(round int) {
				for p := int32(0); p < 3; p++ {
					var rs []*kgo.Record
					for i := 0; i < 100; i++ {
						rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprint(round, "-", p, "-", i)), Value: append(bytes.Repeat(secret, 60), fmt.Sprint(i)...)})
					}
					codec := []kgo.CompressionCodec{kgo.NoCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()}[p]
					src.ProduceWith(t, kfaketest.ProduceOptions{Compression: codec}, "orders", p, rs...)
				}
			}
			produce(0)
			base := []string{"--brokers", src.Addrs()[0], "--repo", url}
			if code, _, errOut := runKtape(t, append([]string{"backup", "--encrypt-to", owner}, base...)...); code != 2 || !strings.Contains(errOut, "--identity-file") {
				t.Fatalf("an encrypted backup without the writer key: %d %s", code, errOut)
			}
			if code, _, errOut := runKtape(t, append([]string{"backup", "--encrypt-to-file", recipients, "--identity-file", writerKey, "--compression", "none"}, base...)...); code != 0 {
				t.Fatalf("encrypted backup: %d %s", code, errOut)
			}
			produce(1)
			// The second backup: the writer key alone, continuing from the first.
			code, out, errOut := runKtape(t, append([]string{"backup", "--identity-file", writerKey, "--json"}, base...)...)
			if code != 0 || !strings.Contains(out, `"records":300`) {
				t.Fatalf("second encrypted backup: %d %s %s", code, out, errOut)
			}
			if code, _, errOut := runKtape(t, append([]string{"backup", "--encrypt-to", owner}, base...)...); code != 2 && code != 1 || !strings.Contains(errOut, "identity") {
				t.Fatalf("a backup into an encrypted repository without a key: %d %s", code, errOut)
			}
			repoArgs := []string{"--repo", url, "--identity-file", writerKey}
			if code, out, errOut := runKtape(t, append([]string{"ls"}, repoArgs...)...); code != 0 || strings.Count(out, "snapshot") != 2 {
				t.Fatalf("ls with the writer key: %d %s %s", code, out, errOut)
			}
			if code, _, errOut := runKtape(t, append([]string{"verify"}, repoArgs...)...); code != 0 {
				t.Fatalf("verify with the writer key: %d %s", code, errOut)
			}
			if code, out, errOut := runKtape(t, append([]string{"verify", "--deep"}, repoArgs...)...); code == 0 || !strings.Contains(out+errOut, "none of the identities given can decrypt it") {
				t.Fatalf("verify --deep with the writer key: %d %s %s", code, out, errOut)
			}
			if code, _, errOut := runKtape(t, "ls", "--repo", url); code == 0 || !strings.Contains(errOut, "encrypted") {
				t.Fatalf("ls without a key: %d %s", code, errOut)
			}
			dst := kfaketest.Start(t)
			if code, _, errOut := runKtape(t, "restore", "--brokers", dst.Addrs()[0], "--repo", url, "--identity-file", writerKey); code == 0 || !strings.Contains(errOut, "none of the identities given can decrypt it") {
				t.Fatalf("restore with the writer key: %d %s", code, errOut)
			}
			ownerArgs := []string{"--repo", url, "--identity-file", ownerKey}
			if code, out, errOut := runKtape(t, append([]string{"verify", "--deep"}, ownerArgs...)...); code != 0 {
				t.Fatalf("verify --deep with the owner key: %d %s %s", code, out, errOut)
			}
			code, out, errOut = runKtape(t, append([]string{"restore", "--brokers", dst.Addrs()[0], "--json"}, ownerArgs...)...)
			if code != 0 || !strings.Contains(out, `"records":600`) || !strings.Contains(out, `"topics_created":1`) {
				t.Fatalf("restore with the owner key: %d %s %s", code, out, errOut)
			}
			// The newest backup holds both rounds.
			want := map[int32][]*kgo.Record{}
			for _, r := range src.ConsumeAll(t, "orders") {
				want[r.Partition] = append(want[r.Partition], r)
			}
			got := map[int32][]*kgo.Record{}
			for _, r := range dst.ConsumeAll(t, "orders") {
				got[r.Partition] = append(got[r.Partition], r)
			}
			for p := int32(0); p < 3; p++ {
				if len(got[p]) != 200 {
					t.Fatalf("orders/%d: restored %d records, want 200", p, len(got[p]))
				}
				for i, r := range got[p] {
					if w := want[p][i]; !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Value, w.Value) || !r.Timestamp.Equal(w.Timestamp) {
						t.Fatalf("orders/%d: restored record %d is %q, want %q", p, i, r.Key, w.Key)
					}
				}
			}
			if where == "local" {
				filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
					if err == nil && !fi.IsDir() {
						if b, _ := os.ReadFile(path); bytes.Contains(b, secret) || bytes.Contains(b, []byte(`"orders"`)) {
							t.Errorf("%s holds record or topic bytes in the clear", path)
						}
					}
					return nil
				})
			}
		})
	}
}
