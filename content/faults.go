package content

// WithFaults returns cfg set so that the service passes every piece it serves
// through corrupt (the piece's index and its bytes, which corrupt may change)
// just before sending it: a test of a program built on this package damages
// data in flight with it, as this package's own tests do with a lying
// provider. corrupt is called from the service's upload goroutines, several
// at once. Set it before New; production code never does.
func WithFaults(cfg Config, corrupt func(piece int, data []byte)) Config {
	t := testHooks{}
	if cfg.test != nil {
		t = *cfg.test
	}
	t.corrupt = corrupt
	cfg.test = &t
	return cfg
}
