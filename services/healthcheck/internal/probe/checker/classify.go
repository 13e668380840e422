package checker

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/go-sql-driver/mysql"

	"github.com/canopy-platform/canopy/services/healthcheck/internal/probe"
)

// ProtocolError is a reply that does not follow the protocol.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "protocol error: " + e.Msg }

// ServerError is an error reply of the server to a probe command.
type ServerError struct {
	// Reason is how the reply is classified (auth_failed, loading, server_error).
	Reason probe.Reason
	// Msg is the server's text.
	Msg string
}

func (e *ServerError) Error() string { return "server error: " + e.Msg }

// maxDetail caps the evidence kept from an error.
const maxDetail = 256

// Classify maps an error of a probe to its reason and the evidence text.
func Classify(err error) (probe.Reason, string) {
	if err == nil {
		return "", ""
	}
	detail := err.Error()
	if len(detail) > maxDetail {
		detail = detail[:maxDetail]
	}
	return classify(err), detail
}

func classify(err error) probe.Reason {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return probe.ReasonProtocol
	}
	var se *ServerError
	if errors.As(err, &se) {
		return se.Reason
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return mysqlReason(me)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return probe.ReasonTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return probe.ReasonRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return probe.ReasonReset
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTDOWN):
		return probe.ReasonUnreachable
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return probe.ReasonClosed
	case errors.Is(err, mysql.ErrMalformPkt), errors.Is(err, mysql.ErrPktSync), errors.Is(err, mysql.ErrPktSyncMul),
		errors.Is(err, mysql.ErrPktTooLarge), errors.Is(err, mysql.ErrOldProtocol), errors.Is(err, mysql.ErrNoTLS):
		return probe.ReasonProtocol
	case errors.Is(err, mysql.ErrInvalidConn):
		// The driver says "invalid connection" for a connection that broke
		// mid-packet: a reset or close the driver did not surface.
		return probe.ReasonClosed
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return probe.ReasonTimeout
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return probe.ReasonUnreachable
	}
	return probe.ReasonError
}

// mysqlReason classifies a MySQL server error by its number.
func mysqlReason(e *mysql.MySQLError) probe.Reason {
	switch e.Number {
	case 1044, 1045, 1142, 1227, 1698, 1251: // access denied, privileges, plugin
		return probe.ReasonAuthFailed
	case 1053, 1077, 2013: // shutdown in progress, normal shutdown, lost connection
		return probe.ReasonLoading
	}
	return probe.ReasonServerError
}
