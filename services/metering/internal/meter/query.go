package meter

import "time"

// Group-by dimensions of usage and cost queries.
const (
	ByInstance = "instance"
	ByMeter    = "meter"
	ByPlan     = "plan"
	ByRegion   = "region"
	ByTenant   = "tenant"
)

// Query selects usage (or costs): the meters (all when empty) of one
// tenant (or, AllTenants, of every tenant: platform-admin only) in
// [From, To), summed per Window (Hour, Day or Month) and per the GroupBy
// dimensions. Instance, when set, keeps one subject.
type Query struct {
	Tenant     string
	AllTenants bool
	Meters     []string
	Instance   string
	From, To   time.Time
	Window     Level
	GroupBy    []string
}

// UsageRow is one window's quantity of one meter, in the meter's display
// unit, for the grouped dimensions (the others are empty).
type UsageRow struct {
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Tenant      string    `json:"tenant_id,omitempty"`
	Meter       string    `json:"meter"`
	Unit        string    `json:"unit"`
	Instance    string    `json:"instance_id,omitempty"`
	Plan        string    `json:"plan_id,omitempty"`
	Region      string    `json:"region,omitempty"`
	Value       float64   `json:"value"`
}

// CostRow is one window's cost for the grouped dimensions; Meter and Unit
// are empty unless grouped by meter (amounts of different meters add up,
// quantities do not).
type CostRow struct {
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	Tenant      string    `json:"tenant_id,omitempty"`
	Meter       string    `json:"meter,omitempty"`
	Unit        string    `json:"unit,omitempty"`
	Instance    string    `json:"instance_id,omitempty"`
	Plan        string    `json:"plan_id,omitempty"`
	Region      string    `json:"region,omitempty"`
	Quantity    float64   `json:"quantity,omitempty"`
	// Amount is a decimal string with 6 fraction digits.
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}
