// Package agent is the planted proxy agent.
package agent
