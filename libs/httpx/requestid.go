package httpx

import (
	"encoding/binary"
	"math/rand/v2"

	"github.com/oklog/ulid/v2"
)

// newRequestID returns a ULID: the time in milliseconds and 80 random bits
// from the runtime's per-thread generator. Unlike ulid.Make it takes no
// global lock and is not monotonic within a millisecond, which request ids
// (for correlation, not ordering) do not need.
func newRequestID() string {
	var id ulid.ULID
	_ = id.SetTime(ulid.Now()) // fails only after the year 10889
	binary.BigEndian.PutUint16(id[6:], uint16(rand.Uint32()))
	binary.BigEndian.PutUint64(id[8:], rand.Uint64())
	return id.String()
}
