package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/ktape/ktape/repo"
	"github.com/ktape/ktape/storage"
)

// BackupTotals are what a ktape backup holds, as CheckBackup found them.
type BackupTotals struct {
	Backup  string // its id
	Records int64
	Batches int64
	Bytes   int64 // batch bytes
}

// CheckBackup reads the summary line `ktape backup --json` printed (the
// last line of out) and the manifest of that backup in the local
// repository repoDir: every partition must be backed up from 0 to its high
// watermark without gaps, and the segments must hold the batches and bytes
// ktape reported. With identityFile (an age key file, as ktape keygen
// writes it) the repository must be encrypted and is read with that key;
// without, it must not be.
func CheckBackup(ctx context.Context, out []byte, repoDir, identityFile string) (BackupTotals, error) {
	var done struct {
		MessageType string `json:"message_type"`
		Backup      string `json:"backup"`
		Batches     int64  `json:"batches"`
		Bytes       int64  `json:"bytes"`
	}
	line := LastLine(string(out))
	if err := json.Unmarshal([]byte(line), &done); err != nil || done.MessageType != "backup_done" {
		return BackupTotals{}, fmt.Errorf("ktape printed %q, not a backup_done line (%v)", line, err)
	}
	tot, err := CheckManifest(ctx, repoDir, done.Backup, identityFile)
	if err != nil {
		return tot, err
	}
	if tot.Batches != done.Batches || tot.Bytes != done.Bytes {
		return tot, fmt.Errorf("the manifest's segments hold %d batches, %d bytes; ktape reported %d, %d", tot.Batches, tot.Bytes, done.Batches, done.Bytes)
	}
	return tot, nil
}

// CheckManifest reads the manifest of backup id in the local repository
// repoDir and checks that every partition is backed up from 0 to its high
// watermark without gaps; it returns what the segments hold. With
// identityFile the repository must be encrypted, and its manifest is read
// with that key (as ktape reads it); without, it must be plain, so that a
// run meant to encrypt cannot pass for one that did not, nor the reverse.
func CheckManifest(ctx context.Context, repoDir, id, identityFile string) (BackupTotals, error) {
	tot := BackupTotals{Backup: id}
	var keys *repo.Keys
	if identityFile != "" {
		ids, err := readIdentities(identityFile)
		if err != nil {
			return tot, err
		}
		keys = &repo.Keys{Identities: ids}
	}
	st, err := storage.OpenExisting(ctx, repoDir)
	if err != nil {
		return tot, fmt.Errorf("open the repository: %w", err)
	}
	defer st.Close()
	r, err := repo.OpenKeys(ctx, st, false, keys)
	if err != nil {
		return tot, fmt.Errorf("open the repository: %w", err)
	}
	if want := identityFile != ""; r.Encrypted() != want {
		return tot, fmt.Errorf("the repository %s: encrypted %v, want %v", repoDir, r.Encrypted(), want)
	}
	m, err := r.Manifest(ctx, id)
	if err != nil {
		return tot, fmt.Errorf("backup %s: %w", id, err)
	}
	for _, t := range m.Topics {
		for _, p := range t.Partitions {
			if p.From != 0 || p.To != p.HighWatermark || len(p.Gaps) > 0 {
				return tot, fmt.Errorf("partition %d backed up [%d, %d) with %d gaps; high watermark %d", p.Partition, p.From, p.To, len(p.Gaps), p.HighWatermark)
			}
			tot.Records += p.To - p.From
			for _, s := range p.Segments {
				tot.Batches += int64(s.Batches)
				tot.Bytes += int64(s.DataBytes)
			}
		}
	}
	return tot, nil
}

// readIdentities reads the age private keys in file, as ktape keygen (or
// age-keygen) writes them.
func readIdentities(file string) ([]age.Identity, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", file, err)
	}
	return ids, nil
}

// Keygen makes an age key pair with ktapeBin's keygen command: the private
// key goes to file (which must not exist), the public key (age1…) is
// returned. The benchmarks encrypt to this one key and read with it, so
// that it is both the repository's recipient and the backup's identity.
func Keygen(ktapeBin, file string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return "", fmt.Errorf("keygen: %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(ktapeBin, "keygen", "-o", file)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ktape keygen -o %s: %v: %s", file, err, LastLines(stderr.String(), 5))
	}
	recipient := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(recipient, "age1") || strings.ContainsAny(recipient, " \n") {
		return "", fmt.Errorf("ktape keygen -o %s printed %q, not an age public key", file, stdout.String())
	}
	return recipient, nil
}
