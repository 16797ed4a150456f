"""Data making and training of the proposal network (not part of the wheel)."""
