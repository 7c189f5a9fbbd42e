package netlab

import "errors"

// Errors returned by the lab. Operations wrap them with what they were doing;
// match with errors.Is.
var (
	// ErrNotRoot: building a lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)
	// to make network namespaces, links and nftables rules.
	ErrNotRoot = errors.New("netlab: needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")
	// ErrBadSpec: the topology is inconsistent (a duplicate or unknown name, a
	// router behind itself, a bad link setting).
	ErrBadSpec = errors.New("netlab: bad spec")
)
