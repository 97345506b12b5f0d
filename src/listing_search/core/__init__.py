"""What every layer shares: immutable query types, the tokenizers, grading and small maths (no I/O)."""
