// Package gaia is the planted coordinator.
package gaia
