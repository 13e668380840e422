package plan

import "slices"

// Engine names a data service engine.
type Engine string

// The engines Canopy runs.
const (
	// MySQL is MySQL-protocol relational storage (MySQL 8 or MariaDB 10.11).
	MySQL Engine = "mysql"
	// Redis is the Redis 7 key-value store.
	Redis Engine = "redis"
)

// Service describes an engine as a catalog service (an OSB "service
// offering"). IDs are fixed in code: OSB requires them to be immutable.
type Service struct {
	ID          string
	Engine      Engine
	DisplayName string
	Description string
	Tags        []string
	// Versions lists the versions plans of this engine may offer.
	Versions []string
	// SemiSync reports whether the engine supports semi-synchronous replication.
	SemiSync bool
}

// services is the one list of supported engines, in display order.
func services() []Service {
	return []Service{
		{
			ID:          "a2dc262d-040c-459d-9e7c-53776f4dcf5b",
			Engine:      MySQL,
			DisplayName: "MySQL",
			Description: "Managed MySQL-compatible databases (MySQL 8, MariaDB 10.11) with replicas, failover and CDC.",
			Tags:        []string{"mysql", "mariadb", "relational", "sql"},
			// "10.11" is MariaDB 10.11 (what the local driver runs);
			// "mariadb-10.11" is its older name, kept for stored plans.
			// Provisioning refuses an order for a version no host runs.
			Versions: []string{"10.11", "mariadb-10.11", "8.0", "8.4"},
			SemiSync: true,
		},
		{
			ID:          "9b94515c-29cf-4531-b84d-8daf6b680216",
			Engine:      Redis,
			DisplayName: "Redis",
			Description: "Managed Redis 7 with replicas and automatic failover.",
			Tags:        []string{"redis", "key-value", "cache"},
			Versions:    []string{"7.0", "7.2", "7.4"},
		},
	}
}

// Services returns the supported engines as catalog services, in display order.
func Services() []Service { return services() }

// LookupService returns the service of engine e.
func LookupService(e Engine) (Service, bool) {
	for _, s := range services() {
		if s.Engine == e {
			return s, true
		}
	}
	return Service{}, false
}

// Engines lists the supported engine names.
func Engines() []Engine {
	var out []Engine
	for _, s := range services() {
		out = append(out, s.Engine)
	}
	return out
}

// SupportsVersion reports whether v is a version of engine e.
func (s Service) SupportsVersion(v string) bool { return slices.Contains(s.Versions, v) }
