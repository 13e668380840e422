package tenancy

import "fmt"

// Quota is the per-tenant ceiling on resources. A zero limit means "no limit",
// so the zero Quota allows everything.
type Quota struct {
	// MaxInstances caps the number of instances.
	MaxInstances int64 `json:"max_instances"`
	// MaxVCPU caps the vCPUs summed over every node of every instance.
	MaxVCPU float64 `json:"max_vcpu"`
	// MaxMemoryMB caps memory summed over every node, in MiB.
	MaxMemoryMB int64 `json:"max_memory_mb"`
	// MaxStorageGB caps storage summed over every node, in GiB.
	MaxStorageGB int64 `json:"max_storage_gb"`
}

// Usage is an amount of the resources a Quota limits: what a tenant uses, or
// what a request adds.
type Usage struct {
	Instances int64   `json:"instances"`
	VCPU      float64 `json:"vcpu"`
	MemoryMB  int64   `json:"memory_mb"`
	StorageGB int64   `json:"storage_gb"`
}

// Add returns u plus o.
func (u Usage) Add(o Usage) Usage {
	return Usage{u.Instances + o.Instances, u.VCPU + o.VCPU, u.MemoryMB + o.MemoryMB, u.StorageGB + o.StorageGB}
}

// Quota names used in QuotaExceededError.Quota.
const (
	QuotaInstances = "instances"
	QuotaVCPU      = "vcpu"
	QuotaMemoryMB  = "memory_mb"
	QuotaStorageGB = "storage_gb"
)

// QuotaExceededError says which limit a request would break.
type QuotaExceededError struct {
	// Quota is one of the Quota* names.
	Quota string
	// Limit is the configured ceiling.
	Limit float64
	// Used is what the tenant uses already.
	Used float64
	// Requested is what the request adds.
	Requested float64
}

// Error implements error.
func (e *QuotaExceededError) Error() string {
	return fmt.Sprintf("quota %s exceeded: limit %g, used %g, requested %g", e.Quota, e.Limit, e.Used, e.Requested)
}

// Validate rejects negative limits.
func (q Quota) Validate() error {
	switch {
	case q.MaxInstances < 0:
		return fmt.Errorf("max_instances must not be negative")
	case q.MaxVCPU < 0:
		return fmt.Errorf("max_vcpu must not be negative")
	case q.MaxMemoryMB < 0:
		return fmt.Errorf("max_memory_mb must not be negative")
	case q.MaxStorageGB < 0:
		return fmt.Errorf("max_storage_gb must not be negative")
	}
	return nil
}

// Check returns a *QuotaExceededError for the first limit that usage plus
// request would exceed, or nil.
func (q Quota) Check(usage, request Usage) error {
	checks := []struct {
		name               string
		limit, used, added float64
	}{
		{QuotaInstances, float64(q.MaxInstances), float64(usage.Instances), float64(request.Instances)},
		{QuotaVCPU, q.MaxVCPU, usage.VCPU, request.VCPU},
		{QuotaMemoryMB, float64(q.MaxMemoryMB), float64(usage.MemoryMB), float64(request.MemoryMB)},
		{QuotaStorageGB, float64(q.MaxStorageGB), float64(usage.StorageGB), float64(request.StorageGB)},
	}
	for _, c := range checks {
		if c.limit > 0 && c.added > 0 && c.used+c.added > c.limit+1e-9 {
			return &QuotaExceededError{Quota: c.name, Limit: c.limit, Used: c.used, Requested: c.added}
		}
	}
	return nil
}
