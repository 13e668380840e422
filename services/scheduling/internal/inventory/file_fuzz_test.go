package inventory

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary bytes as an inventory file: Parse must never
// panic, must reject with ErrInvalid or a validation error, and what it
// accepts must validate again.
func FuzzParse(f *testing.F) {
	// Small inventories in dev.yaml's shape: the fuzzer mutates a 7 KiB seed
	// too slowly to explore.
	for _, s := range []string{
		"regions:\n  - {id: eu-central, name: EU Central, labels: {jurisdiction: eu}}\n  - {id: eu-west}\n" +
			"zones:\n  - {id: eu-central-1, region: eu-central, name: AZ 1}\n  - {id: eu-central-2, region: eu-central}\n  - {id: eu-west-1, region: eu-west}\n" +
			"latencies:\n  - {a: eu-central-1, b: eu-central-2, p95_ms: 1.2}\n  - {a: eu-central, b: eu-west, p95_ms: 24}\n" +
			"hosts:\n  - id: eu-central-1-h1\n    zone: eu-central-1\n    address: 127.0.0.1\n    ports: {from: 20000, to: 20099}\n" +
			"    capacity: {milli_cpu: 8000, memory_mb: 32768, storage_gb: 500}\n    price: {per_vcpu_hour: 0.02, per_gb_hour: 0.005}\n    labels: {disk: ssd}\n",
		"regions: [{id: r1}]\nzones: [{id: z1, region: r1}]\nhosts: [{id: h1, zone: z1, address: 127.0.0.1, ports: {from: 1, to: 2}, capacity: {vcpu: 1, memory_mb: 1, storage_gb: 1}}]\n",
		"regions: [{id: r1}, {id: r1}]\n",
		"hosts: [{id: h1, zone: nowhere}]\n",
		"latencies: [{a: x, b: y, p95_ms: -1}]\n",
		"regions: {}\n",
		"unknown: 1\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			if !errors.Is(err, ErrInvalid) && !errors.As(err, &ve) {
				t.Fatalf("Parse error %v is neither ErrInvalid nor a validation error", err)
			}
			return
		}
		if err := inv.Validate(); err != nil {
			t.Fatalf("accepted inventory does not validate: %v", err)
		}
	})
}
