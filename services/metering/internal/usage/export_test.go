package usage

// WithoutRollups returns a copy of s whose Usage reads the subject tables
// only, as before the per-tenant rollups.
func (s *Store) WithoutRollups() *Store {
	c := *s
	c.noRollups = true
	return &c
}
