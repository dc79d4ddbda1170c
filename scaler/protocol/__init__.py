"""Wire protocol: typed control messages and the batch framing around opaque payloads."""
