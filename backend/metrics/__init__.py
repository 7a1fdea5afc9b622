"""Music-to-dance metrics as ../shared/specs/metrics.md specifies them (reference-code quirks kept)."""
