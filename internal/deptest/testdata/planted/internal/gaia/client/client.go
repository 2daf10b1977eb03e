// Package client is the planted coordinator's client, which proposers may
// import.
package client
