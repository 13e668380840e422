package alert

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// templatePreamble gives templates Prometheus' variables, so annotations
// written for Prometheus rules ({{ $labels.instance }}, {{ $value }}) work.
const templatePreamble = "{{$labels := .Labels}}{{$value := .Value}}"

// templateData is what Prometheus hands an alert template.
type templateData struct {
	Labels map[string]string
	Value  float64
}

// templateFuncs are Prometheus' template functions that make sense
// without a query engine.
var templateFuncs = template.FuncMap{
	"humanize":           humanize,
	"humanizePercentage": humanizePercentage,
	"humanizeDuration":   humanizeDuration,
	"toUpper":            strings.ToUpper,
	"toLower":            strings.ToLower,
	"title":              cases.Title(language.AmericanEnglish, cases.NoLower).String,
	// printf is text/template's builtin.
}

// maxCachedTemplates bounds the parsed-template cache; rule annotations
// are few and repeat on every evaluation, so parsing once pays.
const maxCachedTemplates = 4096

// templateCache maps text to its parsed template (or parse error).
type templateCache struct {
	mu sync.RWMutex
	m  map[string]parsedTemplate
}

type parsedTemplate struct {
	t   *template.Template
	err error
}

// cache is package state only as a memo of a pure function: parsing is
// deterministic, so sharing it cannot leak anything between callers.
var cache = &templateCache{m: map[string]parsedTemplate{}}

func (c *templateCache) get(text string) (*template.Template, error) {
	c.mu.RLock()
	p, ok := c.m[text]
	c.mu.RUnlock()
	if ok {
		return p.t, p.err
	}
	t, err := template.New("annotation").Funcs(templateFuncs).Option("missingkey=zero").Parse(templatePreamble + text)
	c.mu.Lock()
	if len(c.m) >= maxCachedTemplates {
		c.m = map[string]parsedTemplate{}
	}
	c.m[text] = parsedTemplate{t: t, err: err}
	c.mu.Unlock()
	return t, err
}

// Expand expands a Prometheus-style annotation template: {{ $labels.x }},
// {{ $value }}, {{ $externalLabels }} is not supported; functions
// humanize, humanizePercentage, humanizeDuration, printf, toUpper,
// toLower, title. On a template error the text is returned with the error.
// A missing label expands to "" (missingkey=zero, as Prometheus).
func Expand(text string, labels LabelSet, value float64) (string, error) {
	if !strings.Contains(text, "{{") {
		return text, nil
	}
	t, err := cache.get(text)
	if err != nil {
		return text, fmt.Errorf("parse template %q: %w", text, err)
	}
	var b strings.Builder
	data := templateData{Labels: labels, Value: value}
	if data.Labels == nil {
		data.Labels = map[string]string{}
	}
	if err := t.Execute(&b, data); err != nil {
		return text, fmt.Errorf("expand template %q: %w", text, err)
	}
	return b.String(), nil
}

// toFloat converts what a template may pass (numbers, numeric strings,
// durations) to a float64, as Prometheus' convertToFloat does.
func toFloat(i any) (float64, error) {
	switch v := i.(type) {
	case float64:
		return v, nil
	case float32:
		return float64(v), nil
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("not a number: %q", v)
		}
		return f, nil
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case int32:
		return float64(v), nil
	case uint:
		return float64(v), nil
	case uint64:
		return float64(v), nil
	case uint32:
		return float64(v), nil
	case time.Duration:
		return v.Seconds(), nil
	default:
		return 0, fmt.Errorf("can't convert %T to float", i)
	}
}

var (
	bigPrefixes   = []string{"k", "M", "G", "T", "P", "E", "Z", "Y"}
	smallPrefixes = []string{"m", "u", "n", "p", "f", "a", "z", "y"}
)

// scaleSmall multiplies |v| < 1 by 1000 until it reaches 1, returning the
// SI prefix of the last step.
func scaleSmall(v float64) (float64, string) {
	prefix := ""
	for _, p := range smallPrefixes {
		if math.Abs(v) >= 1 {
			break
		}
		prefix = p
		v *= 1000
	}
	return v, prefix
}

// humanize formats with 4 significant digits and an SI prefix: 1234567 →
// 1.235M, 0.012 → 12m.
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
		for _, p := range bigPrefixes {
			if math.Abs(v) < 1000 {
				break
			}
			prefix = p
			v /= 1000
		}
		return fmt.Sprintf("%.4g%s", v, prefix), nil
	}
	v, prefix := scaleSmall(v)
	return fmt.Sprintf("%.4g%s", v, prefix), nil
}

// humanizePercentage formats a ratio as a percentage: 0.1234567 → 12.35%.
func humanizePercentage(i any) (string, error) {
	v, err := toFloat(i)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%.4g%%", v*100), nil
}

// humanizeDuration formats seconds: 899.99 → 14m 59s, 0.5 → 500ms.
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
	if math.Abs(v) < 1 {
		v, prefix := scaleSmall(v)
		return fmt.Sprintf("%.4g%ss", v, prefix), nil
	}
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	total := int64(v)
	seconds, minutes, hours, days := total%60, (total/60)%60, (total/3600)%24, total/86400
	switch {
	case days != 0:
		return fmt.Sprintf("%s%dd %dh %dm %ds", sign, days, hours, minutes, seconds), nil
	case hours != 0:
		return fmt.Sprintf("%s%dh %dm %ds", sign, hours, minutes, seconds), nil
	case minutes != 0:
		return fmt.Sprintf("%s%dm %ds", sign, minutes, seconds), nil
	default:
		return fmt.Sprintf("%s%.4gs", sign, v), nil
	}
}
