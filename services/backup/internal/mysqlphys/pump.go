package mysqlphys

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// pumpBlock is the size of the blocks pump hands on; pumpDepth how many
// are in flight.
const (
	pumpBlock = 1 << 20
	pumpDepth = 4
)

// pump copies r to w in blocks of up to pumpBlock bytes (fewer only at
// the end), reading ahead while w takes the previous blocks: the sealing
// pipeline behind a backup compresses in 1 MiB chunks, and mbstream
// extracts while the repository decrypts and decompresses the next
// blocks. On a write error it calls unblock (nil: r's Read returns by
// itself) so that the reader stops, and returns once the reader is done
// with r.
func pump(w io.Writer, r io.Reader, unblock func()) error {
	free := make(chan []byte, pumpDepth)
	for range pumpDepth {
		free <- make([]byte, pumpBlock)
	}
	full := make(chan []byte, pumpDepth)
	stop := make(chan struct{})
	var readErr error
	go func() {
		defer close(full)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				select {
				case full <- buf[:n]:
				case <-stop:
					return
				}
			}
			switch {
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				return
			case err != nil:
				readErr = err
				return
			}
		}
	}()
	var writeErr error
	for buf := range full {
		if writeErr != nil {
			continue
		}
		if _, err := w.Write(buf); err != nil {
			writeErr = err
			close(stop)
			if unblock != nil {
				unblock()
			}
			continue
		}
		free <- buf[:cap(buf)]
	}
	// full is closed: the reader is done with r and readErr is final.
	if writeErr != nil {
		return writeErr
	}
	return readErr
}

// growPipe asks for a 1 MiB pipe buffer (best effort: the default 64 KiB
// makes the writer wait on the reader sixteen times per block).
func growPipe(f *os.File) {
	_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pumpBlock)
}
