package rules

// Annotation templates, Prometheus' conventions: {{ $labels.x }},
// {{ $value }}, humanize, humanizePercentage, humanizeDuration, printf,
// toUpper, toLower, title. This private copy stands in for alert.Expand
// (written in parallel) and is to be replaced by it at integration.

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// templateDefs gives templates Prometheus' variables.
const templateDefs = "{{$labels := .Labels}}{{$value := .Value}}"

var templateFuncs = template.FuncMap{
	"humanize":           humanize,
	"humanizePercentage": humanizePercentage,
	"humanizeDuration":   humanizeDuration,
	"toUpper":            strings.ToUpper,
	"toLower":            strings.ToLower,
	"title":              func(s string) string { return cases.Title(language.Und, cases.NoLower).String(s) },
}

// templateData is what a template sees.
type templateData struct {
	Labels map[string]string
	Value  float64
}

func parseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=zero").Parse(templateDefs + text)
	if err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	return t, nil
}

// expand runs t; on an error the raw text is returned with it, as
// Prometheus shows a broken annotation rather than none.
func expand(t *template.Template, text string, labels map[string]string, value float64) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, templateData{Labels: labels, Value: value}); err != nil {
		return text, fmt.Errorf("expand template %s: %w", t.Name(), err)
	}
	return b.String(), nil
}

// toFloat accepts numbers and numeric strings (label values are strings).
func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case string:
		return strconv.ParseFloat(strings.TrimSpace(x), 64)
	}
	return 0, fmt.Errorf("cannot convert %T to a number", v)
}

// humanize formats with SI prefixes (1.5k, 2.3M, 10m), as Prometheus.
func humanize(i any) (string, error) {
	v, err := toFloat(i)
	if err != nil {
		return "", err
	}
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("%.4g", v), nil
	}
	if math.Abs(v) >= 1 {
		prefix := ""
		for _, p := range []string{"k", "M", "G", "T", "P", "E", "Z", "Y"} {
			if math.Abs(v) < 1000 {
				break
			}
			prefix, v = p, v/1000
		}
		return fmt.Sprintf("%.4g%s", v, prefix), nil
	}
	v, prefix := smallPrefix(v)
	return fmt.Sprintf("%.4g%s", v, prefix), nil
}

func smallPrefix(v float64) (float64, string) {
	prefix := ""
	for _, p := range []string{"m", "u", "n", "p", "f", "a", "z", "y"} {
		if math.Abs(v) >= 1 {
			break
		}
		prefix, v = p, v*1000
	}
	return v, prefix
}

// humanizePercentage formats a ratio as a percentage (0.873 → 87.3%).
func humanizePercentage(i any) (string, error) {
	v, err := toFloat(i)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%.4g%%", v*100), nil
}

// humanizeDuration formats seconds as "1d 2h 3m 4s", as Prometheus.
func humanizeDuration(i any) (string, error) {
	v, err := toFloat(i)
	if err != nil {
		return "", err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("%.4g", v), nil
	}
	if v == 0 {
		return fmt.Sprintf("%.4gs", v), nil
	}
	if math.Abs(v) >= 1 {
		sign := ""
		if v < 0 {
			sign, v = "-", -v
		}
		d := int64(v)
		secs, mins, hours, days := d%60, (d/60)%60, (d/3600)%24, d/86400
		switch {
		case days != 0:
			return fmt.Sprintf("%s%dd %dh %dm %ds", sign, days, hours, mins, secs), nil
		case hours != 0:
			return fmt.Sprintf("%s%dh %dm %ds", sign, hours, mins, secs), nil
		case mins != 0:
			return fmt.Sprintf("%s%dm %ds", sign, mins, secs), nil
		}
		return fmt.Sprintf("%s%.4gs", sign, v), nil
	}
	v, prefix := smallPrefix(v)
	return fmt.Sprintf("%.4g%ss", v, prefix), nil
}
