// Package clock is planted internal code.
package clock
