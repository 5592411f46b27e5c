"""Encoders, searching and fusion: text → vectors → ranked hits."""
