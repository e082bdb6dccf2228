package appstore

import (
	"fmt"
	"strings"
)

// Environment is the App Store environment a payload or request belongs to,
// spelled as Apple spells it in payloads.
type Environment string

const (
	Production   Environment = "Production"
	Sandbox      Environment = "Sandbox"
	Xcode        Environment = "Xcode"
	LocalTesting Environment = "LocalTesting"
)

// ParseEnvironment accepts an environment name in any case ("sandbox",
// "Sandbox", "PRODUCTION"). Only Production and Sandbox have servers; Xcode
// and LocalTesting are accepted for verifying test payloads.
func ParseEnvironment(s string) (Environment, error) {
	for _, e := range []Environment{Production, Sandbox, Xcode, LocalTesting} {
		if strings.EqualFold(strings.TrimSpace(s), string(e)) {
			return e, nil
		}
	}
	return "", fmt.Errorf("unknown App Store environment %q: use production or sandbox", s)
}

// HasServer reports whether Apple runs an App Store Server API for e.
func (e Environment) HasServer() bool { return e == Production || e == Sandbox }
