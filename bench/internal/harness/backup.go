package harness

import (
	"context"
	"encoding/json"
	"fmt"

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
// ktape reported.
func CheckBackup(ctx context.Context, out []byte, repoDir string) (BackupTotals, error) {
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
	tot, err := CheckManifest(ctx, repoDir, done.Backup)
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
// watermark without gaps; it returns what the segments hold.
func CheckManifest(ctx context.Context, repoDir, id string) (BackupTotals, error) {
	tot := BackupTotals{Backup: id}
	st, err := storage.OpenExisting(ctx, repoDir)
	if err != nil {
		return tot, fmt.Errorf("open the repository: %w", err)
	}
	defer st.Close()
	r, err := repo.Open(ctx, st, false)
	if err != nil {
		return tot, fmt.Errorf("open the repository: %w", err)
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
