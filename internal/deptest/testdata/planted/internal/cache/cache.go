// Package cache is the planted cache store.
package cache
