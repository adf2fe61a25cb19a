"""The pure RFC 8555 core: encodings, JWS, messages, challenges, retry timing, renewal policy.

Touches nothing: no sockets, files, clock or sleep (the current time is passed in), and
imports only the standard library and itself, so every line here is unit-testable.
"""
