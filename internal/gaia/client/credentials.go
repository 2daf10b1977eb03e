package client

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// Token returns the bearer token a command presents: the first line of
// file when one is named, else $LBSYS_TOKEN, else
// $LBSYS_COORDINATOR_TOKEN (the coordinator's admin token), trimmed; ""
// when none is set. Tokens are never flags, so they stay out of ps and
// shell history.
func Token(file string) (string, error) {
	switch {
	case file != "":
		return ReadTokenFile(file)
	case os.Getenv("LBSYS_TOKEN") != "":
		return strings.TrimSpace(os.Getenv("LBSYS_TOKEN")), nil
	}
	return strings.TrimSpace(os.Getenv("LBSYS_COORDINATOR_TOKEN")), nil
}

// ReadTokenFile returns the first line of path, trimmed; an empty first
// line is an error (a token that was not written must not silently mean
// "no token").
func ReadTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 64<<10)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("%s: the first line is empty; write the token on it", path)
	}
	return line, nil
}

// ParseURLs reads a comma-separated list of coordinator base URLs (any
// members of one cluster); each must be http:// or https://.
func ParseURLs(list string) ([]string, error) {
	var urls []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return nil, fmt.Errorf("%q: want http://host:port", u)
			}
			urls = append(urls, u)
		}
	}
	return urls, nil
}
