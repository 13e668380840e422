package binlogarchive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"
)

// binlogMagic starts every binlog file.
var binlogMagic = []byte{0xfe, 'b', 'i', 'n'}

// Offsets in the common event header (19 bytes).
const (
	headerLogPos = 13
	headerFlags  = 17
)

// errUnterminated is a transaction whose end never came before the next
// one began: the stream is broken, read it again.
var errUnterminated = errors.New("transaction without commit event")

// builder assembles whole transactions from a session's events and keeps
// the ones not yet cut into a segment.
type builder struct {
	// fde is the format description in force, as written into segments.
	fde    []byte
	fdeKey string
	// The pending segment: transactions after start up to end.
	buf         bytes.Buffer
	start, end  position
	txns        int
	first, last time.Time
	oldest      time.Time // wall time the first pending transaction was read
	// The open transaction.
	open       bool
	tx         bytes.Buffer
	txGTID     gtid
	txAt       time.Time
	txLast     time.Time
	standalone bool
}

func newBuilder(committed position) *builder {
	return &builder{start: committed.clone(), end: committed.clone()}
}

// add takes one event; done reports that it completed a transaction.
func (b *builder) add(ev *replication.BinlogEvent) (done bool, err error) {
	raw := ev.RawData
	at := time.Unix(int64(ev.Header.Timestamp), 0).UTC()
	switch e := ev.Event.(type) {
	case *replication.FormatDescriptionEvent:
		return false, b.format(raw, e)
	case *replication.RotateEvent, *replication.MariadbGTIDListEvent, *replication.MariadbBinlogCheckPointEvent:
		// Fake and real rotations, the files' GTID lists and checkpoints:
		// not part of what a replay applies.
		return false, nil
	case *replication.MariadbGTIDEvent:
		if b.open {
			return false, fmt.Errorf("%w: %s", errUnterminated, b.txGTID)
		}
		if b.fde == nil {
			return false, errors.New("transaction before the format description event")
		}
		b.open, b.standalone = true, e.IsStandalone()
		b.tx.Reset()
		b.tx.Write(raw)
		b.txGTID = gtidOf(ev, e)
		b.txAt, b.txLast = at, at
		return false, nil
	}
	if t := ev.Header.EventType; t == replication.HEARTBEAT_EVENT || t == replication.HEARTBEAT_LOG_EVENT_V2 {
		return false, nil
	}
	if !b.open {
		// Outside a transaction (start encryption, stop, incident ...):
		// nothing to replay.
		return false, nil
	}
	b.tx.Write(raw)
	if at.After(b.txLast) {
		b.txLast = at
	}
	end := false
	switch e := ev.Event.(type) {
	case *replication.XIDEvent:
		end = true
	case *replication.QueryEvent:
		q := strings.ToUpper(strings.TrimSpace(string(e.Query)))
		end = b.standalone || q == "COMMIT" || q == "ROLLBACK"
	default:
		end = ev.Header.EventType == replication.XA_PREPARE_LOG_EVENT
	}
	if !end {
		return false, nil
	}
	b.open = false
	if b.end.has(b.txGTID) {
		// Already archived (a primary resending what we asked to skip).
		return true, nil
	}
	if b.txns == 0 {
		b.first, b.oldest = b.txAt, time.Now()
	}
	b.buf.Write(b.tx.Bytes())
	b.txns++
	b.last = b.txLast
	b.end[b.txGTID.domain] = b.txGTID
	return true, nil
}

// format takes a format description: a segment holds events of one
// format, so a different one (binlog_checksum changed) cuts first.
func (b *builder) format(raw []byte, e *replication.FormatDescriptionEvent) error {
	fde := fixFDE(raw, e.ChecksumAlgorithm == replication.BINLOG_CHECKSUM_ALG_CRC32)
	key := formatKey(e)
	if b.fde != nil && key != b.fdeKey && b.txns > 0 {
		// The session cuts before a new format (formatChanges).
		return fmt.Errorf("format description changed within a segment after %s", b.start)
	}
	if b.open {
		return fmt.Errorf("%w: %s", errUnterminated, b.txGTID)
	}
	b.fde, b.fdeKey = fde, key
	return nil
}

func formatKey(e *replication.FormatDescriptionEvent) string {
	return fmt.Sprintf("%d/%s/%d/%x", e.Version, e.ServerVersion, e.ChecksumAlgorithm, e.EventTypeHeaderLengths)
}

// formatChanges reports whether ev is a format description other than the
// one of the pending transactions: they must be cut first.
func (b *builder) formatChanges(ev *replication.BinlogEvent) bool {
	e, ok := ev.Event.(*replication.FormatDescriptionEvent)
	return ok && b.txns > 0 && formatKey(e) != b.fdeKey
}

// fixFDE makes the format description the primary sent fit the head of a
// file: it says where it ends in the file, that the file is closed (not
// "in use", which mariadb-binlog warns about) and, with checksums on,
// carries a checksum of those bytes.
func fixFDE(raw []byte, crc bool) []byte {
	b := bytes.Clone(raw)
	binary.LittleEndian.PutUint32(b[headerLogPos:], uint32(len(binlogMagic)+len(b)))
	flags := binary.LittleEndian.Uint16(b[headerFlags:])
	binary.LittleEndian.PutUint16(b[headerFlags:], flags&^replication.LOG_EVENT_BINLOG_IN_USE_F)
	if crc {
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.ChecksumIEEE(b[:len(b)-4]))
	}
	return b
}

// gtidOf reads a GTID event's GTID from its own bytes (seq 8, domain 4
// after the header); the server id is the header's.
func gtidOf(ev *replication.BinlogEvent, e *replication.MariadbGTIDEvent) gtid {
	body := ev.RawData
	if len(body) < replication.EventHeaderSize+12 {
		return gtid{domain: e.GTID.DomainID, server: ev.Header.ServerID, seq: e.GTID.SequenceNumber}
	}
	body = body[replication.EventHeaderSize:]
	return gtid{seq: binary.LittleEndian.Uint64(body), domain: binary.LittleEndian.Uint32(body[8:]), server: ev.Header.ServerID}
}

func (b *builder) size() int { return b.buf.Len() }

// pendingSince is the binlog time of the oldest transaction read and not
// cut yet (zero: none).
func (b *builder) pendingSince() time.Time {
	if b.txns > 0 {
		return b.first
	}
	if b.open {
		return b.txAt
	}
	return time.Time{}
}

// segment is the pending transactions as a binlog file.
func (b *builder) segment(node string) Segment {
	data := make([]byte, 0, len(binlogMagic)+len(b.fde)+b.buf.Len())
	data = append(data, binlogMagic...)
	data = append(data, b.fde...)
	data = append(data, b.buf.Bytes()...)
	return Segment{Data: data, StartPos: b.start.String(), EndPos: b.end.String(), FirstAt: b.first, LastAt: b.last,
		Transactions: b.txns, SourceNode: node}
}

// restart begins the next segment where the cut one ended.
func (b *builder) restart() {
	b.start = b.end.clone()
	b.buf = bytes.Buffer{}
	b.txns = 0
	b.first, b.last, b.oldest = time.Time{}, time.Time{}, time.Time{}
}
