// Package rfc9111 is the planted cache's pure rules.
package rfc9111
