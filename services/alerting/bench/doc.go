// Package alertbench is the peer benchmark of the alerting service (issue
// 16, `make bench`, alone with `make bench-alerting`): the same alert
// stream is pushed to Debian's prometheus-alertmanager and to Canopy's
// alerting service, each started fresh for every step and delivering to
// one local webhook receiver with the same route (group_by [alertname,
// group], group_wait 1s, group_interval 1m), and a rate ladder finds the
// highest rate each keeps up with, its CPU per alert and its POST →
// webhook latency.
//
// The two stream shapes: "distinct groups" gives every alert its own
// group (one notification per alert); "100 groups" spreads the alerts of
// each half group_wait window over 100 fresh groups, so that every group
// receives all of its alerts before its group_wait ends and none waits
// for a group_interval tick (a fixed set of 100 groups would deliver
// later alerts a minute late by design, which measures the timer, not the
// server). A server keeps up with a rate when the load posted at least
// 97 % of it, every post was accepted and every alert reached the
// receiver within group_wait + 2 s; a failed step is run once more before
// the ladder stops. CPU comes from /proc/<pid>/stat (Canopy's also with
// the MariaDB server's, which it needs and Alertmanager does not); the
// harness's own CPU is shown too, since it shares the machine.
//
// It is benchmark support, not production code: import it only from the
// benchmark.
package alertbench
