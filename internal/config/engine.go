package config

// Server engines (server.engine).
const (
	// EngineLbsys is the proxy's own HTTP/1.1 server (the default).
	EngineLbsys = "lbsys"
	// EngineNetHTTP is Go's net/http.Server.
	EngineNetHTTP = "net_http"
)
