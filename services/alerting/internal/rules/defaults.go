package rules

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"

	"gopkg.in/yaml.v3"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// Defaults returns the shipped default rules (parsed from the embedded
// defaults.yaml), validated.
func Defaults() ([]Rule, error) {
	rules, err := ParseYAML(defaultsYAML)
	if err != nil {
		return nil, fmt.Errorf("default rules: %w", err)
	}
	return rules, nil
}

// ParseYAML parses and validates a YAML list of rules (defaults.yaml's
// format; the service's rules_file uses it too). Ids must be unique.
func ParseYAML(b []byte) ([]Rule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var rules []Rule
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf("parse rules: %w", err)
	}
	seen := make(map[string]bool, len(rules))
	var errs []error
	for _, r := range rules {
		if seen[r.ID] {
			errs = append(errs, fmt.Errorf("%w: duplicate id %q", ErrInvalid, r.ID))
		}
		seen[r.ID] = true
		if err := r.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rules, nil
}
