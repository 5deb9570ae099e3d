"""The operators' validation plan as code: playbooks, checks, latency windows, soak sampling, probes, decisions."""
