// Package inventory models where instance nodes can run: regions, availability
// zones, hosts (capacity, allocation, labels, prices, state, address and port
// range) and the latency between zones and regions. It validates an inventory
// as a whole. It does not decide placements and knows nothing of HTTP, Kafka or
// SQL; the placement package builds on it.
package inventory

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalid is wrapped by every validation failure; callers map it to a 4xx.
var ErrInvalid = errors.New("invalid inventory")

// ErrNotFound is returned when a region, zone or host does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when an object already exists or is still referenced.
var ErrConflict = errors.New("conflict")

// FieldError names one invalid field and why it is invalid.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError lists every invalid field found; it wraps ErrInvalid.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Fields))
	for _, f := range e.Fields {
		parts = append(parts, f.Field+": "+f.Reason)
	}
	return "invalid: " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Add records one invalid field.
func (e *ValidationError) Add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// Err returns e when it holds at least one field error, nil otherwise.
func (e *ValidationError) Err() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

// Resources is an amount of compute: CPU in thousandths of a vCPU, memory in
// MiB and storage in GiB.
type Resources struct {
	MilliCPU  int64 `json:"milli_cpu" yaml:"milli_cpu"`
	MemoryMB  int64 `json:"memory_mb" yaml:"memory_mb"`
	StorageGB int64 `json:"storage_gb" yaml:"storage_gb"`
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.MemoryMB + o.MemoryMB, r.StorageGB + o.StorageGB}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.MemoryMB - o.MemoryMB, r.StorageGB - o.StorageGB}
}

// Covers reports whether r is at least o in every dimension.
func (r Resources) Covers(o Resources) bool {
	return r.MilliCPU >= o.MilliCPU && r.MemoryMB >= o.MemoryMB && r.StorageGB >= o.StorageGB
}

// AnyNegative reports whether a dimension is below zero.
func (r Resources) AnyNegative() bool {
	return r.MilliCPU < 0 || r.MemoryMB < 0 || r.StorageGB < 0
}

// String renders r for humans, e.g. "2 vCPU, 8 GiB memory, 100 GiB storage".
func (r Resources) String() string {
	return fmt.Sprintf("%s vCPU, %s memory, %d GiB storage", FormatCPU(r.MilliCPU), FormatMemory(r.MemoryMB), r.StorageGB)
}

// FormatCPU renders milli-vCPU as vCPU ("0.5", "2").
func FormatCPU(m int64) string {
	if m%1000 == 0 {
		return fmt.Sprintf("%d", m/1000)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", float64(m)/1000), "0"), ".")
}

// FormatMemory renders MiB as "512 MiB" or "8 GiB".
func FormatMemory(mb int64) string {
	if mb >= 1024 && mb%1024 == 0 {
		return fmt.Sprintf("%d GiB", mb/1024)
	}
	if mb >= 1024 {
		return fmt.Sprintf("%.1f GiB", float64(mb)/1024)
	}
	return fmt.Sprintf("%d MiB", mb)
}

// HostState is whether a host takes new nodes.
type HostState string

// Host states: only ready hosts take new nodes; cordoned hosts keep what runs on
// them; down hosts are unreachable.
const (
	StateReady    HostState = "ready"
	StateCordoned HostState = "cordoned"
	StateDown     HostState = "down"
)

// Valid reports whether s is a known state.
func (s HostState) Valid() bool {
	return s == StateReady || s == StateCordoned || s == StateDown
}

// Price is what a host costs per vCPU-hour and per GiB-of-memory-hour.
type Price struct {
	PerVCPUHour float64 `json:"per_vcpu_hour" yaml:"per_vcpu_hour"`
	PerGBHour   float64 `json:"per_gb_hour" yaml:"per_gb_hour"`
	// Spot marks pre-emptible capacity.
	Spot bool `json:"spot,omitempty" yaml:"spot,omitempty"`
}

// PortRange is the inclusive range of ports the driver may use on a host.
type PortRange struct {
	From int `json:"from" yaml:"from"`
	To   int `json:"to" yaml:"to"`
}

// Size is the number of ports in the range.
func (p PortRange) Size() int {
	if p.To < p.From {
		return 0
	}
	return p.To - p.From + 1
}

// Region is a geographic region holding availability zones.
type Region struct {
	ID     string            `json:"id" yaml:"id"`
	Name   string            `json:"name,omitempty" yaml:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
}

// Zone is an availability zone inside a region. Zone ids are unique across
// regions.
type Zone struct {
	ID     string `json:"id" yaml:"id"`
	Region string `json:"region" yaml:"region"`
	Name   string `json:"name,omitempty" yaml:"name,omitempty"`
}

// Host is one machine that runs instance nodes.
type Host struct {
	ID        string            `json:"id" yaml:"id"`
	Region    string            `json:"region" yaml:"region"`
	Zone      string            `json:"zone" yaml:"zone"`
	Address   string            `json:"address" yaml:"address"`
	Ports     PortRange         `json:"ports" yaml:"ports"`
	Capacity  Resources         `json:"capacity" yaml:"capacity"`
	Allocated Resources         `json:"allocated" yaml:"allocated"`
	Labels    map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Price     Price             `json:"price" yaml:"price"`
	State     HostState         `json:"state" yaml:"state"`
	// Version increases with every change of the host row (optimistic concurrency).
	Version int64 `json:"version" yaml:"-"`
}

// Free is the capacity not yet allocated.
func (h *Host) Free() Resources { return h.Capacity.Sub(h.Allocated) }

// Latency is the P95 round-trip latency between two zones of one region, or
// between two regions.
type Latency struct {
	A     string  `json:"a" yaml:"a"`
	B     string  `json:"b" yaml:"b"`
	P95MS float64 `json:"p95_ms" yaml:"p95_ms"`
}

// Inventory is a whole inventory as loaded from a file or the database.
type Inventory struct {
	Regions   []Region  `json:"regions" yaml:"regions"`
	Zones     []Zone    `json:"zones" yaml:"zones"`
	Hosts     []Host    `json:"hosts" yaml:"hosts"`
	Latencies []Latency `json:"latencies" yaml:"latencies"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
var labelKeyPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._/-]{0,62}$`)

// ValidID reports whether s is a valid region, zone or host id.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// ValidateLabels checks label keys and values, recording errors under field.
func ValidateLabels(ve *ValidationError, field string, labels map[string]string) {
	for k, v := range labels {
		if !labelKeyPattern.MatchString(k) {
			ve.Add(field+"."+k, "label key must match %s", labelKeyPattern)
		}
		if len(v) > 63 {
			ve.Add(field+"."+k, "label value longer than 63 characters")
		}
	}
}

// ValidateRegion checks one region on its own.
func ValidateRegion(ve *ValidationError, field string, r Region) {
	if !ValidID(r.ID) {
		ve.Add(field+".id", "must be a lower-case id matching %s", idPattern)
	}
	if len(r.Name) > 255 {
		ve.Add(field+".name", "at most 255 characters")
	}
	ValidateLabels(ve, field+".labels", r.Labels)
}

// ValidateZone checks one zone on its own (not that its region exists).
func ValidateZone(ve *ValidationError, field string, z Zone) {
	if !ValidID(z.ID) {
		ve.Add(field+".id", "must be a lower-case id matching %s", idPattern)
	}
	if z.Region == "" {
		ve.Add(field+".region", "required")
	}
	if len(z.Name) > 255 {
		ve.Add(field+".name", "at most 255 characters")
	}
}

// ValidateHost checks one host on its own (not that its zone exists).
func ValidateHost(ve *ValidationError, field string, h Host) {
	if !ValidID(h.ID) {
		ve.Add(field+".id", "must be a lower-case id matching %s", idPattern)
	}
	if h.Zone == "" {
		ve.Add(field+".zone", "required")
	}
	if h.Address == "" || len(h.Address) > 255 {
		ve.Add(field+".address", "required, at most 255 characters")
	}
	if h.Ports.From <= 0 || h.Ports.To > 65535 || h.Ports.To < h.Ports.From {
		ve.Add(field+".ports", "must be a range within 1-65535 with from <= to")
	}
	if h.Capacity.MilliCPU <= 0 {
		ve.Add(field+".capacity.milli_cpu", "must be positive")
	}
	if h.Capacity.MemoryMB <= 0 {
		ve.Add(field+".capacity.memory_mb", "must be positive")
	}
	if h.Capacity.StorageGB <= 0 {
		ve.Add(field+".capacity.storage_gb", "must be positive")
	}
	if h.Allocated.AnyNegative() {
		ve.Add(field+".allocated", "must not be negative")
	}
	if h.Price.PerVCPUHour < 0 || h.Price.PerGBHour < 0 {
		ve.Add(field+".price", "must not be negative")
	}
	if !h.State.Valid() {
		ve.Add(field+".state", "must be one of ready, cordoned, down")
	}
	ValidateLabels(ve, field+".labels", h.Labels)
}

// Validate checks the inventory as a whole: ids are unique, references
// resolve, every host is well-formed, and the latency matrix is complete: every
// pair of zones within a region and every pair of regions has a latency.
func (inv *Inventory) Validate() error {
	ve := &ValidationError{}
	regions := map[string]bool{}
	for i, r := range inv.Regions {
		f := fmt.Sprintf("regions[%d]", i)
		ValidateRegion(ve, f, r)
		if regions[r.ID] {
			ve.Add(f+".id", "duplicate region id %q", r.ID)
		}
		regions[r.ID] = true
	}
	zones := map[string]string{}
	for i, z := range inv.Zones {
		f := fmt.Sprintf("zones[%d]", i)
		ValidateZone(ve, f, z)
		if _, dup := zones[z.ID]; dup {
			ve.Add(f+".id", "duplicate zone id %q", z.ID)
		}
		if _, dup := regions[z.ID]; dup {
			ve.Add(f+".id", "zone id %q is also a region id", z.ID)
		}
		if z.Region != "" && !regions[z.Region] {
			ve.Add(f+".region", "unknown region %q", z.Region)
		}
		zones[z.ID] = z.Region
	}
	hosts := map[string]bool{}
	for i, h := range inv.Hosts {
		f := fmt.Sprintf("hosts[%d]", i)
		ValidateHost(ve, f, h)
		if hosts[h.ID] {
			ve.Add(f+".id", "duplicate host id %q", h.ID)
		}
		hosts[h.ID] = true
		region, ok := zones[h.Zone]
		if h.Zone != "" && !ok {
			ve.Add(f+".zone", "unknown zone %q", h.Zone)
		}
		if ok && h.Region != "" && h.Region != region {
			ve.Add(f+".region", "zone %q is in region %q, not %q", h.Zone, region, h.Region)
		}
	}
	if len(ve.Fields) == 0 {
		if _, err := NewTopology(inv.Regions, inv.Zones, inv.Latencies); err != nil {
			return err
		}
	}
	return ve.Err()
}

// Normalize fills derived fields (a host's region from its zone, ready state
// when empty) so hand-written files can stay short.
func (inv *Inventory) Normalize() {
	zoneRegion := make(map[string]string, len(inv.Zones))
	for _, z := range inv.Zones {
		zoneRegion[z.ID] = z.Region
	}
	for i := range inv.Hosts {
		h := &inv.Hosts[i]
		if h.Region == "" {
			h.Region = zoneRegion[h.Zone]
		}
		if h.State == "" {
			h.State = StateReady
		}
	}
}

// HostFilter selects hosts in listings; After is the cursor (the last id of
// the previous page) and Limit the page size.
type HostFilter struct {
	Region, Zone, State, After string
	Limit                      int
}
