"""The measure stage: what happened, seen from outside the proxies (packets, counters)."""
