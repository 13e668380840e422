package aofarchive

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// ErrCorrupt: the AOF holds something that is neither a command nor an
// annotation.
var ErrCorrupt = errors.New("aof not in the expected format")

// scanned is what scan found at the start of a buffer.
type scanned struct {
	// n is the length of the complete commands and annotations; what
	// follows is a command still being written.
	n int
	// first and last are the first and last "#TS:" annotation's seconds
	// (0: none); startsWithTS says the buffer began with one.
	first, last  int64
	startsWithTS bool
}

// scan walks an AOF's commands (RESP arrays of bulk strings) and
// annotations ("#...\r\n" lines between commands, of which "#TS:<unix
// seconds>" is the one Redis writes before the first command of each new
// second when aof-timestamp-enabled is on).
func scan(b []byte) (scanned, error) {
	var s scanned
	i := 0
	for i < len(b) {
		switch b[i] {
		case '#':
			eol := bytes.Index(b[i:], []byte("\r\n"))
			if eol < 0 {
				return s, nil
			}
			line := b[i+1 : i+eol]
			if ts, ok := bytes.CutPrefix(line, []byte("TS:")); ok {
				v, err := strconv.ParseInt(string(ts), 10, 64)
				if err != nil {
					return s, fmt.Errorf("%w: annotation %q at byte %d", ErrCorrupt, line, i)
				}
				if s.first == 0 {
					s.first = v
					s.startsWithTS = i == 0
				}
				s.last = v
			}
			i += eol + 2
		case '*':
			n, ok, err := command(b[i:])
			if err != nil {
				return s, fmt.Errorf("%w at byte %d", err, i)
			}
			if !ok {
				return s, nil
			}
			i += n
		default:
			return s, fmt.Errorf("%w: byte %q at %d starts neither a command nor an annotation", ErrCorrupt, b[i], i)
		}
		s.n = i
	}
	return s, nil
}

// command returns the length of the RESP array of bulk strings at the
// start of b; ok is false when b ends inside it.
func command(b []byte) (n int, ok bool, err error) {
	count, n, ok, err := header(b, '*')
	if !ok || err != nil {
		return 0, ok, err
	}
	for range count {
		size, hn, ok, err := header(b[n:], '$')
		if !ok || err != nil {
			return 0, ok, err
		}
		n += hn
		if len(b) < n+int(size)+2 {
			return 0, false, nil
		}
		if b[n+int(size)] != '\r' || b[n+int(size)+1] != '\n' {
			return 0, false, fmt.Errorf("%w: bulk string not ended by CRLF", ErrCorrupt)
		}
		n += int(size) + 2
	}
	return n, true, nil
}

// header parses "<kind><decimal>\r\n".
func header(b []byte, kind byte) (v int64, n int, ok bool, err error) {
	if len(b) == 0 {
		return 0, 0, false, nil
	}
	if b[0] != kind {
		return 0, 0, false, fmt.Errorf("%w: want %q, found %q", ErrCorrupt, kind, b[0])
	}
	eol := bytes.Index(b, []byte("\r\n"))
	if eol < 0 {
		if len(b) > 24 {
			return 0, 0, false, fmt.Errorf("%w: header without CRLF", ErrCorrupt)
		}
		return 0, 0, false, nil
	}
	v, perr := strconv.ParseInt(string(b[1:eol]), 10, 64)
	if perr != nil || v < 0 || v > 1<<32 {
		return 0, 0, false, fmt.Errorf("%w: header %q", ErrCorrupt, b[:eol])
	}
	return v, eol + 2, true, nil
}
