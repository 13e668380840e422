package httpx

import "github.com/oklog/ulid/v2"

func newRequestID() string { return ulid.Make().String() }
