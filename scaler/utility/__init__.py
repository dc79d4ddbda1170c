"""Small shared helpers: capabilities, ids, serialization, networking and keys."""
