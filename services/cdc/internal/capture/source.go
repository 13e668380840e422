package capture

// Source is a node to read.
type Source struct{ Addr, User, Password string }
