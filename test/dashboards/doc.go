// Package dashboards tests the Grafana dashboards under dashboards/ against
// a real Prometheus: tachyon hosts run a scenario in-process, Debian's
// prometheus binary scrapes them, and every PromQL expression of every
// panel must parse, name only metrics that exist, and return series.
package dashboards
