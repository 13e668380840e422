package analysis

import "strings"

// Markdown renders the analysis table (code, rule, recovery) in table
// order, for docs/failover.md, so the document cannot drift from the code.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| Problem | Rule | Recovery |\n|---|---|---|\n")
	for _, r := range Table() {
		b.WriteString("| `" + string(r.Code) + "` | " + r.Description + " | " + r.Recovery + " |\n")
	}
	b.WriteString("| `" + string(NoProblem) + "` | No rule matches. | none |\n")
	return b.String()
}
