// Package e2e holds the tests that run both planes together: real proxy
// agents against real Gaia coordinators, and the control plane's ingestion
// reading what a real proxy writes. It has no production code.
//
// The architecture rules (internal/deptest) keep the data plane and the
// control plane from importing each other, tests included; a test that
// needs both belongs here, in a package of neither plane, and uses only
// the two planes' exported API.
package e2e
