package devkafka_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canopy-platform/canopy/libs/devkafka"
	"github.com/canopy-platform/canopy/libs/statedir"
	"github.com/segmentio/kafka-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     devkafka.Config
		wantErr bool
	}{
		{name: "defaults", cfg: devkafka.Config{}},
		{name: "random port", cfg: devkafka.Config{Addr: "127.0.0.1:0"}},
		{name: "no port", cfg: devkafka.Config{Addr: "localhost"}, wantErr: true},
		{name: "negative partitions", cfg: devkafka.Config{Partitions: -1}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tc.wantErr)
			}
		})
	}
}

func TestStartRejectsNilLoggerAndBusyPort(t *testing.T) {
	if _, err := devkafka.Start(context.Background(), devkafka.Config{Addr: "127.0.0.1:0"}, nil); err == nil {
		t.Fatal("nil logger accepted")
	}
	b, err := devkafka.Start(context.Background(), devkafka.Config{Addr: "127.0.0.1:0"}, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := devkafka.Start(context.Background(), devkafka.Config{Addr: b.Addr()}, discard()); err == nil {
		t.Fatalf("second broker on busy %s started", b.Addr())
	}
}

func TestAutoCreatedTopicsUseConfiguredPartitions(t *testing.T) {
	b, err := devkafka.Start(context.Background(), devkafka.Config{Addr: "127.0.0.1:0", Partitions: 4}, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	writeRecords(t, b.Addr(), "auto.created", 0, 1)
	conn, err := kafka.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions("auto.created")
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 4 {
		t.Fatalf("auto-created topic has %d partitions, want 4", len(parts))
	}
}

func TestRestartWithDataDirKeepsRecordsAndCommittedOffsets(t *testing.T) {
	dir := t.TempDir()
	cfg := devkafka.Config{Addr: "127.0.0.1:0", DataDir: dir, Partitions: 1}
	const topic, group = "persisted.v1", "persisted-group"

	b, err := devkafka.Start(context.Background(), cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	writeRecords(t, b.Addr(), topic, 0, 5)
	// A group consumes and commits the first three.
	r := newGroupReader(b.Addr(), group, topic)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b2, err := devkafka.Start(context.Background(), cfg, discard())
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer b2.Close()

	// Every record is still there.
	pr := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b2.Addr()}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	for i := 0; i < 5; i++ {
		m, err := pr.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read record %d after restart: %v", i, err)
		}
		if want := fmt.Sprintf("record-%d", i); string(m.Value) != want || m.Offset != int64(i) {
			t.Fatalf("record %d after restart = %q@%d, want %q", i, m.Value, m.Offset, want)
		}
	}
	if err := pr.Close(); err != nil {
		t.Fatal(err)
	}

	// The group resumes at its committed offset.
	r2 := newGroupReader(b2.Addr(), group, topic)
	defer r2.Close()
	m, err := r2.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("fetch after restart: %v", err)
	}
	if m.Offset != 3 || string(m.Value) != "record-3" {
		t.Fatalf("group resumed at %q@%d, want record-3@3", m.Value, m.Offset)
	}
}

func writeRecords(t *testing.T, addr, topic string, from, to int) {
	t.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Transport: transport, AllowAutoTopicCreation: true, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for i := from; i < to; i++ {
		msgs = append(msgs, kafka.Message{Topic: topic, Value: []byte(fmt.Sprintf("record-%d", i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func newGroupReader(addr, group, topic string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{addr}, GroupID: group, GroupTopics: []string{topic}, StartOffset: kafka.FirstOffset,
		MaxWait: 100 * time.Millisecond, SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
		RebalanceTimeout: 2 * time.Second,
	})
}

func TestDataDirIsPrivate(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "kafka")
	// A data dir from an older run, readable by everyone.
	if err := os.MkdirAll(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "old", "leftover"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := devkafka.Start(context.Background(), devkafka.Config{Addr: "127.0.0.1:0", DataDir: dir, Partitions: 1}, discard())
	if err != nil {
		t.Fatal(err)
	}
	writeRecords(t, b.Addr(), "private.v1", 0, 3)
	// While the broker runs, what it creates sits below a 0700 directory.
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir while running: %v %v", fi.Mode().Perm(), err)
	}
	b.Close()
	loose, err := statedir.Loose(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(loose) > 0 {
		t.Fatalf("group/other bits after close: %s", strings.Join(loose, ", "))
	}
	var files int
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, _ error) error {
		if e != nil && !e.IsDir() {
			files++
		}
		return nil
	})
	if files < 2 {
		t.Fatalf("broker persisted %d files; the test checks nothing", files)
	}
}
