package tenancy

import (
	"errors"
	"testing"
)

func TestQuotaCheck(t *testing.T) {
	q := Quota{MaxInstances: 3, MaxVCPU: 8, MaxMemoryMB: 16384, MaxStorageGB: 100}
	tests := []struct {
		name      string
		quota     Quota
		usage     Usage
		request   Usage
		wantQuota string
	}{
		{name: "fits", quota: q, usage: Usage{1, 2, 4096, 20}, request: Usage{1, 2, 4096, 20}},
		{name: "exactly at limit", quota: q, usage: Usage{2, 6, 12288, 80}, request: Usage{1, 2, 4096, 20}},
		{name: "instances", quota: q, usage: Usage{Instances: 3}, request: Usage{Instances: 1}, wantQuota: QuotaInstances},
		{name: "vcpu", quota: q, usage: Usage{VCPU: 7.5}, request: Usage{Instances: 1, VCPU: 1}, wantQuota: QuotaVCPU},
		{name: "memory", quota: q, request: Usage{MemoryMB: 16385}, wantQuota: QuotaMemoryMB},
		{name: "storage", quota: q, usage: Usage{StorageGB: 99}, request: Usage{StorageGB: 2}, wantQuota: QuotaStorageGB},
		{name: "zero quota is unlimited", usage: Usage{1000, 1000, 1 << 30, 1 << 20}, request: Usage{1, 1, 1, 1}},
		{name: "shrinking while over is allowed", quota: q, usage: Usage{Instances: 5}, request: Usage{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.quota.Check(tt.usage, tt.request)
			if tt.wantQuota == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			var qe *QuotaExceededError
			if !errors.As(err, &qe) {
				t.Fatalf("Check = %v, want *QuotaExceededError", err)
			}
			if qe.Quota != tt.wantQuota {
				t.Fatalf("quota = %q, want %q", qe.Quota, tt.wantQuota)
			}
		})
	}
}

func TestQuotaValidate(t *testing.T) {
	if err := (Quota{MaxInstances: -1}).Validate(); err == nil {
		t.Fatal("negative limit accepted")
	}
	if err := (Quota{}).Validate(); err != nil {
		t.Fatal(err)
	}
}
