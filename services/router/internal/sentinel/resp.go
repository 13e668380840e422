package sentinel

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
)

// ProtocolError is malformed input: the connection answers it with an
// error reply and closes, as Redis does.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

const (
	// maxInline bounds an inline command's line (Redis: 64 KiB).
	maxInline = 64 << 10
	// maxHeader bounds a "*<count>" or "$<len>" line.
	maxHeader = 32
)

// reader reads commands in RESP (arrays of bulk strings) or inline form.
// A command's total size is bounded by max, so a peer cannot make the
// server buffer more than that whatever lengths it announces.
type reader struct {
	br  *bufio.Reader
	max int
}

func newReader(r io.Reader, max int) *reader {
	return &reader{br: bufio.NewReaderSize(r, 4096), max: max}
}

// command returns the next command's arguments; nil arguments (an empty
// line, "*0") carry no command.
func (r *reader) command() ([][]byte, error) {
	b, err := r.br.Peek(1)
	if err != nil {
		return nil, err
	}
	if b[0] != '*' {
		return r.inline()
	}
	line, err := r.line(maxHeader, "too big mbulk count string")
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(string(line[1:]))
	if err != nil || n > 1024*1024 {
		return nil, &ProtocolError{"invalid multibulk length"}
	}
	if n <= 0 {
		return nil, nil
	}
	budget := r.max
	var args [][]byte
	for range n {
		line, err := r.line(maxHeader, "too big bulk count string")
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			return nil, &ProtocolError{"expected '$', got '\\r'"}
		}
		if line[0] != '$' {
			return nil, &ProtocolError{"expected '$', got '" + printable(line[0]) + "'"}
		}
		size, err := strconv.Atoi(string(line[1:]))
		if err != nil || size < 0 || size > budget {
			return nil, &ProtocolError{"invalid bulk length"}
		}
		budget -= size
		arg := make([]byte, size+2)
		if _, err := io.ReadFull(r.br, arg); err != nil {
			return nil, unexpectedEOF(err)
		}
		if arg[size] != '\r' || arg[size+1] != '\n' {
			return nil, &ProtocolError{"invalid bulk length"}
		}
		args = append(args, arg[:size:size])
	}
	return args, nil
}

func (r *reader) inline() ([][]byte, error) {
	line, err := r.line(min(r.max, maxInline), "too big inline request")
	if err != nil {
		return nil, err
	}
	args, ok := splitArgs(line)
	if !ok {
		return nil, &ProtocolError{"unbalanced quotes in request"}
	}
	return args, nil
}

// line reads up to '\n' and returns the line without its CR LF; a line
// longer than limit is a protocol error named msg.
func (r *reader) line(limit int, msg string) ([]byte, error) {
	var buf []byte
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(buf)+len(frag) > limit+2 {
			return nil, &ProtocolError{msg}
		}
		buf = append(buf, frag...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, unexpectedEOF(err)
		}
	}
	return bytes.TrimSuffix(buf[:len(buf)-1], []byte{'\r'}), nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func printable(c byte) string {
	if c < 0x20 || c > 0x7e {
		return "\\x" + strconv.FormatUint(uint64(c), 16)
	}
	return string(c)
}

// splitArgs splits an inline command like Redis's sdssplitargs: blanks
// separate arguments, "..." takes backslash escapes, '...' is literal but
// for \'; a closing quote must be followed by a blank.
func splitArgs(line []byte) ([][]byte, bool) {
	var args [][]byte
	i := 0
	for {
		for i < len(line) && isBlank(line[i]) {
			i++
		}
		if i == len(line) {
			return args, true
		}
		var cur []byte
		inDQ, inSQ := false, false
		for done := false; !done; {
			if i == len(line) {
				if inDQ || inSQ {
					return nil, false
				}
				break
			}
			c := line[i]
			switch {
			case inDQ:
				switch {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					v, _ := strconv.ParseUint(string(line[i+2:i+4]), 16, 8)
					cur = append(cur, byte(v))
					i += 3
				case c == '\\' && i+1 < len(line):
					i++
					switch line[i] {
					case 'n':
						cur = append(cur, '\n')
					case 'r':
						cur = append(cur, '\r')
					case 't':
						cur = append(cur, '\t')
					case 'b':
						cur = append(cur, '\b')
					case 'a':
						cur = append(cur, '\a')
					default:
						cur = append(cur, line[i])
					}
				case c == '"':
					if i+1 < len(line) && !isBlank(line[i+1]) {
						return nil, false
					}
					done = true
				default:
					cur = append(cur, c)
				}
			case inSQ:
				switch {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					cur = append(cur, '\'')
				case c == '\'':
					if i+1 < len(line) && !isBlank(line[i+1]) {
						return nil, false
					}
					done = true
				default:
					cur = append(cur, c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inDQ = true
				case '\'':
					inSQ = true
				default:
					cur = append(cur, c)
				}
			}
			i++
		}
		if cur == nil {
			cur = []byte{}
		}
		args = append(args, cur)
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == 0 }

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// writer builds replies for one protocol version: RESP3's maps, nulls and
// pushes degrade to RESP2's arrays and null bulk/array as Redis does.
type writer struct {
	b     []byte
	proto int
	errs  int
}

func (w *writer) simple(s string) { w.b = append(append(append(w.b, '+'), s...), "\r\n"...) }

func (w *writer) err(s string) {
	w.errs++
	// An error line cannot carry CR or LF; user input is echoed in some.
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	w.b = append(append(append(w.b, '-'), s...), "\r\n"...)
}

func (w *writer) int(n int64) {
	w.b = strconv.AppendInt(append(w.b, ':'), n, 10)
	w.b = append(w.b, "\r\n"...)
}

func (w *writer) bulk(s string) {
	w.b = strconv.AppendInt(append(w.b, '$'), int64(len(s)), 10)
	w.b = append(append(append(w.b, "\r\n"...), s...), "\r\n"...)
}

func (w *writer) header(c byte, n int) {
	w.b = strconv.AppendInt(append(w.b, c), int64(n), 10)
	w.b = append(w.b, "\r\n"...)
}

func (w *writer) array(n int) { w.header('*', n) }

// mapLen starts a map of n pairs (RESP2: a flat array of 2n).
func (w *writer) mapLen(n int) {
	if w.proto >= 3 {
		w.header('%', n)
		return
	}
	w.header('*', 2*n)
}

// push starts an out-of-band message (RESP2: an array).
func (w *writer) push(n int) {
	if w.proto >= 3 {
		w.header('>', n)
		return
	}
	w.header('*', n)
}

// null is a missing string.
func (w *writer) null() {
	if w.proto >= 3 {
		w.b = append(w.b, "_\r\n"...)
		return
	}
	w.b = append(w.b, "$-1\r\n"...)
}

// nullArray is a missing array (get-master-addr-by-name of no master).
func (w *writer) nullArray() {
	if w.proto >= 3 {
		w.b = append(w.b, "_\r\n"...)
		return
	}
	w.b = append(w.b, "*-1\r\n"...)
}

// fields writes a field/value map.
func (w *writer) fields(kv []string) {
	w.mapLen(len(kv) / 2)
	for _, s := range kv {
		w.bulk(s)
	}
}
