package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5/middleware"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// FieldError names one invalid input field and why it is invalid.
type FieldError struct {
	// Field is a JSON pointer-like path, e.g. "name" or "nodes[0].vcpu".
	Field string `json:"field"`
	// Reason says what is wrong in plain words.
	Reason string `json:"reason"`
}

// Problem is an RFC 9457 problem details object. It is also an error, so
// handlers and decoders can return it and WriteError renders it.
type Problem struct {
	Type     string       `json:"type,omitempty"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
	// Extensions are further members merged into the top-level object.
	Extensions map[string]any `json:"-"`
}

// Error returns the problem's title and detail.
func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%s: %s", p.Title, p.Detail)
	}
	return p.Title
}

// MarshalJSON flattens Extensions into the object as RFC 9457 allows.
func (p *Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	base, err := json.Marshal((*plain)(p))
	if err != nil || len(p.Extensions) == 0 {
		return base, err
	}
	m := map[string]any{}
	for k, v := range p.Extensions {
		m[k] = v
	}
	var fixed map[string]any
	if err := json.Unmarshal(base, &fixed); err != nil {
		return nil, err
	}
	for k, v := range fixed {
		m[k] = v
	}
	return json.Marshal(m)
}

// NewProblem returns a problem with the standard title for status.
func NewProblem(status int, detail string) *Problem {
	return &Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

// BadRequest returns a 400 problem for the invalid fields.
func BadRequest(detail string, fields ...FieldError) *Problem {
	p := NewProblem(http.StatusBadRequest, detail)
	p.Errors = fields
	return p
}

// Unprocessable returns a 422 problem for input that parsed but is invalid.
func Unprocessable(detail string, fields ...FieldError) *Problem {
	p := NewProblem(http.StatusUnprocessableEntity, detail)
	p.Errors = fields
	return p
}

// ProblemFrom returns the *Problem in err's chain, if there is one.
func ProblemFrom(err error) (*Problem, bool) {
	var p *Problem
	if errors.As(err, &p) {
		return p, true
	}
	return nil, false
}

// WriteProblem writes p as application/problem+json. The request path becomes
// the instance and the request id an extension, so a user can quote both.
func WriteProblem(w http.ResponseWriter, r *http.Request, shared *Problem) {
	// Problems are often package-level values reused across requests: fill in
	// the per-request members on a copy.
	p := *shared
	if len(shared.Extensions) > 0 {
		p.Extensions = make(map[string]any, len(shared.Extensions)+1)
		for k, v := range shared.Extensions {
			p.Extensions[k] = v
		}
	}
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	if r != nil {
		if id := middleware.GetReqID(r.Context()); id != "" {
			if p.Extensions == nil {
				p.Extensions = map[string]any{}
			}
			p.Extensions["request_id"] = id
		}
	}
	if p.Type == "" {
		p.Type = "about:blank"
	}
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(&p)
}

// WriteError renders err: a *Problem as itself, anything else as a 500 whose
// detail does not leak internals.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if p, ok := ProblemFrom(err); ok {
		WriteProblem(w, r, p)
		return
	}
	WriteProblem(w, r, NewProblem(http.StatusInternalServerError, "internal error; quote the request id when reporting it"))
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// DecodeJSON strictly decodes the request body into dst: unknown fields,
// wrong types, trailing data, an empty body and a body over the server's limit
// all return a *Problem that names the field where it can.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") && !strings.Contains(strings.ToLower(ct), "+json") {
		p := NewProblem(http.StatusUnsupportedMediaType, "request body must be application/json")
		return p
	}
	body := r.Body
	if !bodyLimited(r) {
		// Handlers mounted outside NewRouter still get a bound on what they read.
		body = http.MaxBytesReader(w, body, DefaultMaxBodyBytes)
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return BadRequest("request body must contain a single JSON object")
	}
	return nil
}

func decodeProblem(err error) *Problem {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		maxErr    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &maxErr):
		return NewProblem(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxErr.Limit))
	case errors.Is(err, io.EOF):
		return BadRequest("request body is empty; a JSON object is required")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest(fmt.Sprintf("request body is not valid JSON: %v", err))
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(body)"
		}
		return BadRequest("a field has the wrong type", FieldError{Field: field, Reason: fmt.Sprintf("must be %s, not %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return BadRequest("request body has an unknown field", FieldError{Field: name, Reason: "unknown field"})
	default:
		return BadRequest(fmt.Sprintf("request body could not be decoded: %v", err))
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	default:
		return goKind
	}
}
