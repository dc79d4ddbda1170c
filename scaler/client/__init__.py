"""The client side: ``Client``, its futures and object refs."""
