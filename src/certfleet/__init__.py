"""certfleet: a small, auditable ACME (RFC 8555) client and certificate fleet manager."""

__version__ = "0.1.0"
