"""Subscribers, their filters and schedules, and the pages they use."""
