package main

import (
	"fmt"
	"strings"

	"go.uber.org/zap"
)

// applyEffects runs once the logger exists: it logs one warning for each flag given a value that changes nothing
// in Cairn, and fails, naming the flags and the missing feature, when a
// flag asks for a feature that is not built (the start then exits 1).
// Defaults never log nor fail.
func applyEffects(c *config, logger *zap.Logger) error {
	defs := c.flagDefs()
	defaults := map[string]string{}
	d0 := defaultConfig()
	for _, d := range d0.flagDefs() {
		defaults[d.name] = d.value.String()
	}
	var missing []string // the flags asking for missingWhy
	missingWhy := ""
	for _, d := range defs {
		if d.value.String() == defaults[d.name] {
			continue
		}
		switch d.effect {
		case works:
		case noEffect:
			logger.Warn("flag has no effect in Cairn", zap.String("flag", "--"+d.name),
				zap.String("value", d.value.String()), zap.String("reason", d.why))
		case notBuilt:
			if missingWhy == "" || d.why == missingWhy {
				missingWhy = d.why
				missing = append(missing, "--"+d.name)
			}
		}
	}
	for _, g := range gates {
		on, given := c.FeatureGates.enabled(g)
		switch {
		case !given:
		case g.notBuilt && on:
			if missingWhy == "" {
				missingWhy = g.cairn
				missing = append(missing, "--feature-gates="+g.name+"=true")
			}
		case g.notBuilt:
		case g.cairn == "": // honoured
		default:
			logger.Warn("feature gate has no effect in Cairn", zap.String("feature-gate", fmt.Sprintf("%s=%t", g.name, on)),
				zap.String("reason", g.cairn))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %s", strings.Join(missing, ", "), missingWhy)
	}
	return nil
}
