package config

import "strings"

// cutHostPort splits "host:port", "[host]:port" or ":port" the way
// net.SplitHostPort does (the same answers and the same refusals, checked
// by FuzzCutHostPort), without importing net: the configuration types
// are read by the simulator, which stays clear of the network packages
// (internal/deptest). why says what is wrong with a refused address.
func cutHostPort(addr string) (host, port, why string) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", "missing port in address"
	}
	if addr[0] == '[' {
		end := strings.IndexByte(addr, ']')
		if end < 0 {
			return "", "", "missing ']' in address"
		}
		switch end + 1 {
		case len(addr):
			return "", "", "missing port in address"
		case i:
		default:
			if addr[end+1] == ':' {
				return "", "", "too many colons in address"
			}
			return "", "", "missing port in address"
		}
		host = addr[1:end]
		if strings.IndexByte(addr[1:], '[') >= 0 {
			return "", "", "unexpected '[' in address"
		}
		if strings.IndexByte(addr[end+1:], ']') >= 0 {
			return "", "", "unexpected ']' in address"
		}
		return host, addr[i+1:], ""
	}
	host = addr[:i]
	if strings.IndexByte(host, ':') >= 0 {
		return "", "", "too many colons in address"
	}
	if strings.IndexByte(addr, '[') >= 0 {
		return "", "", "unexpected '[' in address"
	}
	if strings.IndexByte(addr, ']') >= 0 {
		return "", "", "unexpected ']' in address"
	}
	return host, addr[i+1:], ""
}
