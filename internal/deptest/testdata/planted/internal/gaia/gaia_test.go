package gaia

// The coordinator's test imports the proxy's agent (rule control-plane,
// through a test).
import _ "example.com/planted/internal/agent"
