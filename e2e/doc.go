// Package e2e holds Canopy's end-to-end checks: the layout tests that keep
// docker-compose.yml, the Kubernetes manifests, the Prometheus config and the topic
// list in step with the services that exist, and scenarios run against a running
// all-in-one platform through its public API (see README.md). It is a module of its
// own so it never links service code.
package e2e
