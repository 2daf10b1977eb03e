// Package fsm is the planted coordinator's state machine.
package fsm
