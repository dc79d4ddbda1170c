"""Scaling by queue depth: a pure policy from (demand, groups, units, clock) to decisions with reasons."""
