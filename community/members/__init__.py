"""Members directory: notes, tags, segments, exports."""
