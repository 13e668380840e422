package svctest

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Metric reads the service's /metrics and returns the sum of the series
// that start with series: a name (`canopy_x_total`) or a name and the
// first of its labels (`canopy_x_total{result="sent"`, or with the closing
// brace for an exact label set). The name or label value must end where
// series ends, so `x_total` does not count `x_total_created`. It is 0 when
// no series matches.
func (s *Service) Metric(series string) (float64, error) {
	resp, err := s.client.Get(s.URL() + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("metric %s: %w", series, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metric %s: GET /metrics: %s", series, resp.Status)
	}
	v, err := sumSeries(resp.Body, series)
	if err != nil {
		return 0, fmt.Errorf("metric %s: %w", series, err)
	}
	return v, nil
}

// sumSeries adds up the samples of the Prometheus text exposition in r
// whose series starts with series (see Metric).
func sumSeries(r io.Reader, series string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !matches(line, series) {
			continue
		}
		v, err := sampleValue(line)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, sc.Err()
}

// matches says whether a sample line belongs to series: it starts with it
// and the name or label value does not go on past it.
func matches(line, series string) bool {
	if series == "" || strings.HasPrefix(line, "#") || !strings.HasPrefix(line, series) {
		return false
	}
	rest := line[len(series):]
	if rest == "" {
		return false
	}
	switch series[len(series)-1] {
	case '}', '"', ',':
		return true
	}
	// series ends inside a name: the name must end here.
	return rest[0] == ' ' || rest[0] == '{'
}

// sampleValue is the value of a sample line `name{labels} value [timestamp]`
// (label values may hold spaces and braces, so it reads after the label
// set).
func sampleValue(line string) (float64, error) {
	rest := line
	if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
		end := strings.LastIndex(line, "}")
		if end < i {
			return 0, fmt.Errorf("sample %q: unterminated labels", line)
		}
		rest = line[end+1:]
	} else if i >= 0 {
		rest = line[i:]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return 0, fmt.Errorf("sample %q: no value", line)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("sample %q: %w", line, err)
	}
	return v, nil
}
