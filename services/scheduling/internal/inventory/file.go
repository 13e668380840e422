package inventory

import (
	"bytes"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// Parse reads an inventory from YAML (the format of deploy/inventory/dev.yaml),
// rejecting unknown fields, fills derived fields and validates it.
func Parse(data []byte) (Inventory, error) {
	var inv Inventory
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&inv); err != nil {
		return inv, fmt.Errorf("%w: parse inventory: %v", ErrInvalid, err)
	}
	inv.Normalize()
	if err := inv.Validate(); err != nil {
		return inv, err
	}
	return inv, nil
}

// LoadFile reads and validates an inventory file.
func LoadFile(path string) (Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Inventory{}, fmt.Errorf("read inventory file: %w", err)
	}
	inv, err := Parse(data)
	if err != nil {
		return inv, fmt.Errorf("inventory file %s: %w", path, err)
	}
	return inv, nil
}
